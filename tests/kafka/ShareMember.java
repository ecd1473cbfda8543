// A member of a share group (KIP-932) with Apache Kafka's Java client, for the share tests:
//
//   java -cp 'jars/*' ShareMember.java BOOTSTRAP GROUP TOPIC WORK_MS MAX_POLL [RULES [CONFIGS]]
//
// It first sets the group's `share.auto.offset.reset` to `earliest` and CONFIGS
// (comma-separated `KEY=VALUE` group configs) with Admin, as `kafka-configs --entity-type
// groups` does, then consumes TOPIC with explicit
// acknowledgement: each record is worked on for WORK_MS, then acknowledged by RULES, a
// comma-separated list of `VALUE=reject`, `VALUE=release` (released on every delivery) or
// `VALUE=release1` (released on its first delivery only); any other record is accepted.
// After each commitSync it prints one JSON line per record whose partition's commit
// succeeded: {"offset","value","deliveries","ack","t"} (t: when the commit returned, ms
// since the epoch) — stdout holds only what the broker confirmed. To stderr go "POLLED n"
// per poll and "GOT offset deliveries t" per record delivered, t being when the poll before
// it was called (0 for the first): the client fetches a batch ahead as a poll is called,
// so the fetch that delivered the record was sent no earlier than t. SIGTERM closes it
// cleanly.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.StringDeserializer;

public class ShareMember {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], topic = args[2];
        long workMs = Long.parseLong(args[3]);
        Map<String, String> rules = new HashMap<>();
        if (args.length > 5 && !args[5].isEmpty()) {
            for (String rule : args[5].split(",")) {
                String[] kv = rule.split("=", 2);
                rules.put(kv[0], kv[1]);
            }
        }
        Properties admin = new Properties();
        admin.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin a = Admin.create(admin)) {
            ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
            List<AlterConfigOp> ops = new ArrayList<>();
            ops.add(new AlterConfigOp(
                new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET));
            if (args.length > 6 && !args[6].isEmpty()) {
                for (String kv : args[6].split(",")) {
                    String[] p = kv.split("=", 2);
                    ops.add(new AlterConfigOp(new ConfigEntry(p[0], p[1]), AlterConfigOp.OpType.SET));
                }
            }
            a.incrementalAlterConfigs(Map.of(res, ops)).all().get();
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, args[4]);
        props.put("share.acknowledgement.mode", "explicit");
        props.put(ConsumerConfig.METADATA_MAX_AGE_CONFIG, "1000");
        KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(props);
        AtomicBoolean stopping = new AtomicBoolean(false);
        AtomicBoolean closed = new AtomicBoolean(false);
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            stopping.set(true);
            consumer.wakeup();
            try { main.join(20_000); } catch (InterruptedException e) { }
            Runtime.getRuntime().halt(closed.get() ? 0 : 1);
        }));
        consumer.subscribe(List.of(topic));
        StringBuilder out = new StringBuilder();
        long previousCall = 0;
        try {
            while (!stopping.get()) {
                long called = System.currentTimeMillis();
                ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                long polledAt = previousCall;
                previousCall = called;
                if (records.isEmpty()) continue;
                StringBuilder got = new StringBuilder("POLLED " + records.count() + "\n");
                for (ConsumerRecord<String, String> r : records) {
                    got.append("GOT ").append(r.offset()).append(' ')
                        .append(r.deliveryCount().map(Short::intValue).orElse(-1)).append(' ')
                        .append(polledAt).append('\n');
                }
                System.err.print(got);
                System.err.flush();
                List<String[]> lines = new ArrayList<>();
                for (ConsumerRecord<String, String> r : records) {
                    int deliveries = r.deliveryCount().map(Short::intValue).orElse(-1);
                    String rule = rules.getOrDefault(r.value(), "");
                    AcknowledgeType ack = AcknowledgeType.ACCEPT;
                    if (rule.equals("reject")) ack = AcknowledgeType.REJECT;
                    if (rule.equals("release") || (rule.equals("release1") && deliveries == 1)) {
                        ack = AcknowledgeType.RELEASE;
                    }
                    if (ack == AcknowledgeType.ACCEPT && workMs > 0) Thread.sleep(workMs);
                    consumer.acknowledge(r, ack);
                    lines.add(new String[] {
                        r.topic() + "-" + r.partition(), Long.toString(r.offset()), r.value(),
                        Integer.toString(deliveries), ack.toString().toLowerCase() });
                }
                Map<TopicIdPartition, Optional<KafkaException>> committed = consumer.commitSync();
                Set<String> failed = new HashSet<>();
                committed.forEach((tp, e) -> {
                    if (e.isPresent()) {
                        failed.add(tp.topic() + "-" + tp.partition());
                        System.err.println("COMMIT FAILED " + tp + ": " + e.get());
                    }
                });
                long committedAt = System.currentTimeMillis();
                out.setLength(0);
                for (String[] l : lines) {
                    if (failed.contains(l[0])) continue;
                    out.append("{\"offset\":").append(l[1]).append(",\"value\":\"").append(l[2])
                        .append("\",\"deliveries\":").append(l[3]).append(",\"ack\":\"")
                        .append(l[4]).append("\",\"t\":").append(committedAt).append("}\n");
                }
                System.out.print(out);
                System.out.flush();
            }
        } catch (WakeupException e) {
            // Stopping.
        } finally {
            // Bounded: after a failover the old leader, which held this member's share
            // session, is gone, and closing that session waits for it until the timeout.
            consumer.close(Duration.ofSeconds(5));
            System.err.println("CLOSED");
            closed.set(true);
        }
    }
}
