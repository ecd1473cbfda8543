// Throughput of a queue with slow work per record, for scripts/bench-share.sh:
//
//   java -cp 'jars/*' ShareBench.java BOOTSTRAP MODE CONSUMERS TOPIC GROUP SECONDS WORK_MS MAX_POLL
//
// MODE `share` runs CONSUMERS KafkaShareConsumers of share group GROUP (explicit
// acknowledgement, each record accepted after WORK_MS of sleep); `classic` runs CONSUMERS
// KafkaConsumers of classic group GROUP (range assignor, a commit after each poll). Each
// consumer is a thread of this JVM; MAX_POLL records a poll at most. Counts records
// processed (share: acceptance confirmed by commitSync; classic: offsets committed) from
// 3 s after the first record any consumer got, for SECONDS, and prints one JSON line:
// {"mode","consumers","records","seconds","per_sec","ideal_per_sec"}, the ideal being
// CONSUMERS * 1000 / WORK_MS.
import java.time.Duration;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public class ShareBench {
    static final long WARMUP_MS = 3000;

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], mode = args[1], topic = args[3], group = args[4];
        int consumers = Integer.parseInt(args[2]);
        long seconds = Long.parseLong(args[5]), workMs = Long.parseLong(args[6]);
        String maxPoll = args[7];
        if (mode.equals("share")) {
            Properties a = new Properties();
            a.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            try (Admin admin = Admin.create(a)) {
                ConfigResource res = new ConfigResource(ConfigResource.Type.GROUP, group);
                AlterConfigOp op = new AlterConfigOp(
                    new ConfigEntry("share.auto.offset.reset", "earliest"), AlterConfigOp.OpType.SET);
                admin.incrementalAlterConfigs(Map.of(res, List.of(op))).all().get();
            }
        }
        AtomicLong done = new AtomicLong();
        AtomicLong firstAt = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < consumers; i++) {
            Runnable body = mode.equals("share")
                ? () -> share(bootstrap, group, topic, workMs, maxPoll, done, firstAt, stop)
                : () -> classic(bootstrap, group, topic, workMs, maxPoll, done, firstAt, stop);
            Thread t = new Thread(body);
            t.start();
            threads.add(t);
        }
        while (firstAt.get() == 0) Thread.sleep(10);
        // Every member joins and gets its first batch before the window opens.
        Thread.sleep(WARMUP_MS);
        long start = System.nanoTime();
        long before = done.get();
        Thread.sleep(seconds * 1000);
        long records = done.get() - before;
        double elapsed = (System.nanoTime() - start) / 1e9;
        stop.set(true);
        for (Thread t : threads) t.join(30_000);
        System.out.printf(Locale.ROOT,
            "{\"mode\":\"%s\",\"consumers\":%d,\"records\":%d,\"seconds\":%.2f,\"per_sec\":%.1f,\"ideal_per_sec\":%.1f}%n",
            mode, consumers, records, elapsed, records / elapsed, consumers * 1000.0 / workMs);
        System.exit(0);
    }

    static Properties base(String bootstrap, String group, String maxPoll) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, maxPoll);
        return p;
    }

    static void share(String bootstrap, String group, String topic, long workMs, String maxPoll,
                      AtomicLong done, AtomicLong firstAt, AtomicBoolean stop) {
        Properties p = base(bootstrap, group, maxPoll);
        p.put("share.acknowledgement.mode", "explicit");
        try (KafkaShareConsumer<byte[], byte[]> c = new KafkaShareConsumer<>(p)) {
            c.subscribe(List.of(topic));
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> records = c.poll(Duration.ofMillis(100));
                if (records.isEmpty()) continue;
                firstAt.compareAndSet(0, System.nanoTime());
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    sleep(workMs);
                    c.acknowledge(r, AcknowledgeType.ACCEPT);
                }
                long ok = c.commitSync().values().stream().allMatch(Optional::isEmpty)
                    ? records.count() : 0;
                done.addAndGet(ok);
            }
        }
    }

    static void classic(String bootstrap, String group, String topic, long workMs, String maxPoll,
                        AtomicLong done, AtomicLong firstAt, AtomicBoolean stop) {
        Properties p = base(bootstrap, group, maxPoll);
        p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            c.subscribe(List.of(topic));
            while (!stop.get()) {
                ConsumerRecords<byte[], byte[]> records = c.poll(Duration.ofMillis(100));
                if (records.isEmpty()) continue;
                firstAt.compareAndSet(0, System.nanoTime());
                for (ConsumerRecord<byte[], byte[]> r : records) sleep(workMs);
                c.commitSync();
                done.addAndGet(records.count());
            }
        } catch (org.apache.kafka.common.KafkaException e) {
            // Stopping while the group rebalances: the window has closed already.
        }
    }

    static void sleep(long ms) {
        try { Thread.sleep(ms); } catch (InterruptedException e) { Thread.currentThread().interrupt(); }
    }
}
