// Transactions through Apache Kafka's Java client (4.3), run as a single file:
//
//   java -cp 'JARS/*' tests/kafka/Transactions.java BOOTSTRAP PREFIX
//
// - copy: N numbered records go into PREFIX-in (3 partitions); a consume-transform-produce
//   loop (a read_committed consumer of group PREFIX-g, a transactional producer) copies
//   them to PREFIX-out, committing each batch's offsets in its transaction, and before
//   each commit writes junk in a transaction it aborts. A read_committed and a
//   read_uncommitted reader then read PREFIX-out, and the group's offsets are read back.
//   The copier's epoch, as DescribeTransactions shows it, says which protocol ran:
//   transactions v2 (KIP-890) bumps it at every commit and abort, v1 never.
// - zombie: two producers with one transactional.id; the first, fenced by the second,
//   fails to write or to commit; the second commits.
//
// Prints one JSON line of counts and exits 0 (the test judges it); exits 1 with the error
// on stderr on a failure of the client itself. A watchdog ends the run after 80 s.

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class Transactions {
    static final int N = 600;

    public static void main(String[] args) throws Exception {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(80_000);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("Transactions.java: watchdog: still running after 80 s");
            Runtime.getRuntime().halt(2);
        });
        watchdog.setDaemon(true);
        watchdog.start();
        String bootstrap = args[0], prefix = args[1];
        try {
            String copy = copy(bootstrap, prefix);
            String zombie = zombie(bootstrap, prefix);
            System.out.println("{\"copy\": " + copy + ", \"zombie\": " + zombie + "}");
            System.exit(0);
        } catch (Exception e) {
            System.err.println("Transactions.java: " + e);
            e.printStackTrace();
            System.exit(1);
        }
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return Admin.create(p);
    }

    static void create(String bootstrap, String... topics) throws Exception {
        try (Admin a = admin(bootstrap)) {
            List<NewTopic> news = new ArrayList<>();
            for (String t : topics) {
                news.add(new NewTopic(t, 3, (short) -1));
            }
            a.createTopics(news).all().get();
        }
    }

    static KafkaProducer<String, String> producer(String bootstrap, String txnId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", StringSerializer.class.getName());
        p.put("linger.ms", "5");
        if (txnId != null) {
            p.put("transactional.id", txnId);
            p.put("transaction.timeout.ms", "30000");
        }
        KafkaProducer<String, String> producer = new KafkaProducer<>(p);
        if (txnId != null) {
            producer.initTransactions();
        }
        return producer;
    }

    static KafkaConsumer<String, String> consumer(String bootstrap, String group, String isolation) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("group.id", group);
        p.put("enable.auto.commit", "false");
        p.put("auto.offset.reset", "earliest");
        p.put("isolation.level", isolation);
        p.put("max.poll.records", "50");
        p.put("key.deserializer", StringDeserializer.class.getName());
        p.put("value.deserializer", StringDeserializer.class.getName());
        return new KafkaConsumer<>(p);
    }

    static String copy(String bootstrap, String prefix) throws Exception {
        String src = prefix + "-in", dst = prefix + "-out", group = prefix + "-g";
        String txnId = prefix + "-copier";
        create(bootstrap, src, dst);
        try (KafkaProducer<String, String> fill = producer(bootstrap, null)) {
            for (int i = 0; i < N; i++) {
                fill.send(new ProducerRecord<>(src, Integer.toString(i), "in-" + i));
            }
            fill.flush();
        }
        int copied = 0, commits = 0, aborts = 0;
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, "read_committed");
                KafkaProducer<String, String> p = producer(bootstrap, txnId)) {
            c.subscribe(List.of(src));
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (copied < N && System.nanoTime() < deadline) {
                ConsumerRecords<String, String> got = c.poll(Duration.ofSeconds(1));
                if (got.isEmpty()) {
                    continue;
                }
                p.beginTransaction();
                for (ConsumerRecord<String, String> r : got) {
                    p.send(new ProducerRecord<>(dst, r.key(), "junk-" + r.value()));
                }
                p.flush();
                p.abortTransaction();
                aborts++;
                p.beginTransaction();
                Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                for (ConsumerRecord<String, String> r : got) {
                    p.send(new ProducerRecord<>(dst, r.key(), "out-" + r.value().substring(3)));
                    offsets.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1));
                }
                p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                p.commitTransaction();
                commits++;
                copied += got.count();
            }
        }
        int epoch;
        try (Admin a = admin(bootstrap)) {
            TransactionDescription d = a.describeTransactions(List.of(txnId)).description(txnId).get();
            epoch = d.producerEpoch();
        }
        List<String> committed = readAll(bootstrap, dst, "read_committed");
        List<String> uncommitted = readAll(bootstrap, dst, "read_uncommitted");
        Set<String> want = new HashSet<>();
        for (int i = 0; i < N; i++) {
            want.add("out-" + i);
        }
        Set<String> seen = new HashSet<>(committed);
        Set<String> missing = new HashSet<>(want);
        missing.removeAll(seen);
        long junkCommitted = committed.stream().filter(v -> v.startsWith("junk-")).count();
        long junkUncommitted = uncommitted.stream().filter(v -> v.startsWith("junk-")).count();
        long offsets = 0;
        try (KafkaConsumer<String, String> c = consumer(bootstrap, group, "read_committed")) {
            Set<TopicPartition> parts = new HashSet<>();
            for (int i = 0; i < 3; i++) {
                parts.add(new TopicPartition(src, i));
            }
            for (OffsetAndMetadata o : c.committed(parts, Duration.ofSeconds(30)).values()) {
                offsets += o == null ? 0 : o.offset();
            }
        }
        return String.format(
                "{\"copied\": %d, \"commits\": %d, \"aborts\": %d, \"epoch\": %d, "
                        + "\"read_committed\": %d, \"missing\": %d, \"duplicates\": %d, "
                        + "\"junk_committed\": %d, \"junk_uncommitted\": %d, \"committed_offsets\": %d}",
                copied, commits, aborts, epoch, committed.size(), missing.size(),
                committed.size() - seen.size(), junkCommitted, junkUncommitted, offsets);
    }

    static List<String> readAll(String bootstrap, String topic, String isolation) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(bootstrap, topic + "-" + isolation, isolation)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                parts.add(new TopicPartition(topic, i));
            }
            c.assign(parts);
            c.seekToBeginning(parts);
            Map<TopicPartition, Long> ends = c.endOffsets(parts);
            long deadline = System.nanoTime() + 30_000_000_000L;
            while (System.nanoTime() < deadline) {
                boolean done = true;
                for (TopicPartition tp : parts) {
                    done &= c.position(tp) >= ends.get(tp);
                }
                if (done) {
                    break;
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                    values.add(r.value());
                }
            }
        }
        return values;
    }

    static String zombie(String bootstrap, String prefix) throws Exception {
        String dst = prefix + "-z", txnId = prefix + "-zombie";
        create(bootstrap, dst);
        String oldError = "none";
        try (KafkaProducer<String, String> old = producer(bootstrap, txnId)) {
            old.beginTransaction();
            old.send(new ProducerRecord<>(dst, "old-1")).get();
            try (KafkaProducer<String, String> fresh = producer(bootstrap, txnId)) {
                try {
                    old.send(new ProducerRecord<>(dst, "old-2"));
                    old.commitTransaction();
                } catch (Exception e) {
                    oldError = e.getClass().getSimpleName();
                }
                fresh.beginTransaction();
                fresh.send(new ProducerRecord<>(dst, "new-1"));
                fresh.commitTransaction();
            }
        }
        List<String> committed = readAll(bootstrap, dst, "read_committed");
        committed.sort(null);
        return String.format("{\"old_error\": \"%s\", \"read_committed\": [%s]}", oldError,
                String.join(", ", committed.stream().map(v -> "\"" + v + "\"").toList()));
    }
}
