// The exactly-once checker's application on Apache Kafka's Java client (4.3), run as a
// single file: what tests/kafka/eos.py's `copy` does on librdkafka, with transactions v2
// when the broker finalizes `transaction.version=2`.
//
//   java -cp 'JARS/*' tests/kafka/EosCopy.java BOOTSTRAP IN OUT GROUP TXN_ID N OUTDIR
//
// Reads IN (group GROUP, static member "copier", read_committed) and writes each record to
// OUT as "out-{i}" in a transaction that also commits the input offsets; each poll (up to
// 50 records) is one transaction, flushed and held open 50 ms before its commit, and every
// 5th is aborted on purpose and copied again. An error aborts the transaction and rewinds
// to the committed offsets; when even the abort fails (this instance was fenced) it exits
// 3 for the checker to start the application again. Exits 0 once the committed input
// offsets add up to N, printing one JSON line: commits, aborts, errors, and the producer
// epoch DescribeTransactions shows then (transactions v2 bumps it at every end).

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class EosCopy {
    public static void main(String[] args) throws Exception {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(280_000);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("EosCopy.java: watchdog: still running after 280 s");
            Runtime.getRuntime().halt(2);
        });
        watchdog.setDaemon(true);
        watchdog.start();
        String bootstrap = args[0], src = args[1], dst = args[2], group = args[3], txnId = args[4];
        long n = Long.parseLong(args[5]);
        Properties cp = new Properties();
        cp.put("bootstrap.servers", bootstrap);
        cp.put("group.id", group);
        cp.put("group.instance.id", "copier");
        cp.put("session.timeout.ms", "10000");
        cp.put("enable.auto.commit", "false");
        cp.put("auto.offset.reset", "earliest");
        cp.put("isolation.level", "read_committed");
        cp.put("max.poll.records", "50");
        cp.put("reconnect.backoff.max.ms", "1000");
        cp.put("key.deserializer", StringDeserializer.class.getName());
        cp.put("value.deserializer", StringDeserializer.class.getName());
        Properties pp = new Properties();
        pp.put("bootstrap.servers", bootstrap);
        pp.put("transactional.id", txnId);
        pp.put("transaction.timeout.ms", "10000");
        pp.put("linger.ms", "5");
        pp.put("reconnect.backoff.max.ms", "1000");
        pp.put("key.serializer", StringSerializer.class.getName());
        pp.put("value.serializer", StringSerializer.class.getName());
        int commits = 0, aborts = 0, errors = 0;
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp);
                KafkaProducer<String, String> p = new KafkaProducer<>(pp)) {
            p.initTransactions();
            c.subscribe(List.of(src));
            while (true) {
                ConsumerRecords<String, String> got = c.poll(Duration.ofSeconds(1));
                if (got.isEmpty()) {
                    if (committedTotal(c, src) >= n) {
                        break;
                    }
                    continue;
                }
                try {
                    p.beginTransaction();
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    for (ConsumerRecord<String, String> r : got) {
                        p.send(new ProducerRecord<>(dst, r.key(), "out-" + r.value().substring(3)));
                        offsets.put(new TopicPartition(r.topic(), r.partition()),
                                new OffsetAndMetadata(r.offset() + 1));
                    }
                    p.flush();
                    Thread.sleep(50);
                    if ((commits + aborts) % 5 == 4) {
                        p.abortTransaction();
                        aborts++;
                        rewind(c);
                        continue;
                    }
                    p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                    p.commitTransaction();
                    commits++;
                } catch (Exception e) {
                    errors++;
                    System.err.println("EosCopy.java: " + e + "; aborting and rewinding");
                    try {
                        p.abortTransaction();
                        aborts++;
                    } catch (Exception fatal) {
                        System.err.println("EosCopy.java: fatal: " + fatal);
                        System.out.println("{\"fatal\": \"" + fatal.getClass().getSimpleName() + "\"}");
                        System.exit(3);
                    }
                    rewind(c);
                }
            }
        }
        int epoch;
        Properties ap = new Properties();
        ap.put("bootstrap.servers", bootstrap);
        try (Admin a = Admin.create(ap)) {
            epoch = a.describeTransactions(List.of(txnId)).description(txnId).get().producerEpoch();
        }
        System.out.printf("{\"commits\": %d, \"aborts\": %d, \"errors\": %d, \"epoch\": %d}%n",
                commits, aborts, errors, epoch);
        System.exit(0);
    }

    static long committedTotal(KafkaConsumer<String, String> c, String topic) {
        Set<TopicPartition> parts = c.partitionsFor(topic).stream()
                .map(i -> new TopicPartition(topic, i.partition())).collect(Collectors.toSet());
        long total = 0;
        for (OffsetAndMetadata o : c.committed(parts, Duration.ofSeconds(30)).values()) {
            total += o == null ? 0 : o.offset();
        }
        return total;
    }

    static void rewind(KafkaConsumer<String, String> c) {
        Set<TopicPartition> assigned = c.assignment();
        Map<TopicPartition, OffsetAndMetadata> committed = c.committed(assigned, Duration.ofSeconds(30));
        for (TopicPartition tp : assigned) {
            OffsetAndMetadata o = committed.get(tp);
            c.seek(tp, o == null ? 0 : o.offset());
        }
    }
}
