// A member of a consumer group with Apache Kafka's Java client, for the group tests:
//
//   java -cp 'jars/*' GroupMember.java BOOTSTRAP GROUP PROTOCOL SUBSCRIPTION [INSTANCE_ID]
//
// PROTOCOL is `consumer` (KIP-848) or `classic`; SUBSCRIPTION is a comma-separated list of
// topics, or `re:EXPR` for a regular expression the broker matches (RE2, KIP-848's
// SubscriptionPattern). It reads from the earliest offset, commits synchronously after
// each batch it processed, and prints one JSON line per record to stdout
// ({"topic","partition","offset","value"}) and one line per change of assignment to stderr
// ("ASSIGNED t-0,t-1"). SIGTERM closes it cleanly (a static member leaves with epoch -2).
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class GroupMember {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], protocol = args[2], subscription = args[3];
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "1000");
        if (args.length > 4) props.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, args[4]);
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(props);
        AtomicBoolean stopping = new AtomicBoolean(false);
        AtomicBoolean closed = new AtomicBoolean(false);
        Thread main = Thread.currentThread();
        // On SIGTERM: stop polling, close (leaving the group), and exit 0 once closed (a
        // JVM ended by a signal exits 143 otherwise).
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.set(true);
            consumer.wakeup();
            try { main.join(20_000); } catch (InterruptedException e) { }
            Runtime.getRuntime().halt(closed.get() ? 0 : 1);
        }));
        ConsumerRebalanceListener listener = new ConsumerRebalanceListener() {
            public void onPartitionsRevoked(Collection<TopicPartition> ps) { }
            public void onPartitionsAssigned(Collection<TopicPartition> ps) { report(consumer); }
            public void onPartitionsLost(Collection<TopicPartition> ps) { System.err.println("LOST " + ps); }
        };
        if (subscription.startsWith("re:")) {
            consumer.subscribe(new SubscriptionPattern(subscription.substring(3)), listener);
        } else {
            consumer.subscribe(Arrays.asList(subscription.split(",")), listener);
        }
        StringBuilder out = new StringBuilder();
        try {
            while (!stopping.get()) {
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                if (records.isEmpty()) continue;
                out.setLength(0);
                for (ConsumerRecord<String, String> r : records) {
                    out.append("{\"topic\":\"").append(r.topic()).append("\",\"partition\":")
                        .append(r.partition()).append(",\"offset\":").append(r.offset())
                        .append(",\"value\":\"").append(r.value()).append("\"}\n");
                }
                System.out.print(out);
                System.out.flush();
                consumer.commitSync();
            }
        } catch (WakeupException e) {
            // Stopping.
        } finally {
            consumer.close(CloseOptions.timeout(Duration.ofSeconds(10)));
            System.err.println("CLOSED");
            closed.set(true);
        }
    }

    static void report(KafkaConsumer<String, String> consumer) {
        List<String> names = new ArrayList<>();
        for (TopicPartition tp : consumer.assignment()) names.add(tp.topic() + "-" + tp.partition());
        Collections.sort(names);
        System.err.println("ASSIGNED " + String.join(",", names));
    }
}
