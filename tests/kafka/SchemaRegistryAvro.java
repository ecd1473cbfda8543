// Confluent's Java serializers (kafka-avro-serializer and kafka-schema-registry-client
// 7.0.16) against Shale's schema registry and Kafka listener, run as a single file:
//
//   java -cp 'JARS/*' tests/kafka/SchemaRegistryAvro.java BOOTSTRAP REGISTRY_URL PREFIX
//
// KafkaAvroSerializer registers the value schema of PREFIX-orders (auto.register.schemas)
// and produces 100 records with it and 100 with an evolved schema (a field added with a
// default); KafkaAvroDeserializer reads all 200 back, each with its writer's schema by
// the ID the record carries. Then CachedSchemaRegistryClient: an incompatible evolution
// (a field without a default) is refused with 409 and reported incompatible by
// testCompatibility, the same schema under another subject gets the same ID, and the
// subject's versions and latest version read back.
//
// Prints one JSON line of what it saw and exits 0 (the test judges it); exits 1 with the
// error on stderr on a failure of the client itself. A watchdog ends the run after 80 s.

import io.confluent.kafka.schemaregistry.avro.AvroSchema;
import io.confluent.kafka.schemaregistry.client.CachedSchemaRegistryClient;
import io.confluent.kafka.schemaregistry.client.rest.exceptions.RestClientException;
import io.confluent.kafka.serializers.KafkaAvroDeserializer;
import io.confluent.kafka.serializers.KafkaAvroSerializer;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SchemaRegistryAvro {
    static final String V1 = "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"shop\",\"fields\":["
            + "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"item\",\"type\":\"string\"}]}";
    static final String V2 = "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"shop\",\"fields\":["
            + "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"item\",\"type\":\"string\"},"
            + "{\"name\":\"qty\",\"type\":\"int\",\"default\":1}]}";
    static final String V3_BAD = "{\"type\":\"record\",\"name\":\"Order\",\"namespace\":\"shop\",\"fields\":["
            + "{\"name\":\"id\",\"type\":\"long\"},{\"name\":\"item\",\"type\":\"string\"},"
            + "{\"name\":\"qty\",\"type\":\"int\",\"default\":1},{\"name\":\"note\",\"type\":\"string\"}]}";

    public static void main(String[] args) throws Exception {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(80_000);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("SchemaRegistryAvro.java: watchdog: still running after 80 s");
            Runtime.getRuntime().halt(2);
        });
        watchdog.setDaemon(true);
        watchdog.start();
        String bootstrap = args[0], url = args[1], prefix = args[2];
        try {
            System.out.println(run(bootstrap, url, prefix));
            System.exit(0);
        } catch (Exception e) {
            System.err.println("SchemaRegistryAvro.java: " + e);
            System.exit(1);
        }
    }

    static String run(String bootstrap, String url, String prefix) throws Exception {
        String topic = prefix + "-orders", subject = topic + "-value";
        Properties admin = new Properties();
        admin.put("bootstrap.servers", bootstrap);
        try (Admin a = Admin.create(admin)) {
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
        }

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", KafkaAvroSerializer.class.getName());
        p.put("schema.registry.url", url);
        p.put("auto.register.schemas", "true");
        Map<Long, String> sent = new HashMap<>();
        try (KafkaProducer<String, Object> producer = new KafkaProducer<>(p)) {
            int n = 0;
            for (String text : List.of(V1, V2)) {
                Schema schema = new Schema.Parser().parse(text);
                for (int i = 0; i < 100; i++, n++) {
                    GenericRecord r = new GenericData.Record(schema);
                    r.put("id", (long) n);
                    r.put("item", "item-" + n);
                    if (schema.getField("qty") != null) {
                        r.put("qty", n % 7);
                    }
                    producer.send(new ProducerRecord<>(topic, Long.toString(n), r)).get();
                    sent.put((long) n, r.toString());
                }
            }
        }

        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", prefix + "-reader");
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", KafkaAvroDeserializer.class.getName());
        c.put("schema.registry.url", url);
        Map<Long, String> got = new HashMap<>();
        try (KafkaConsumer<String, Object> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 40_000;
            while (got.size() < sent.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, Object> r : consumer.poll(Duration.ofMillis(200))) {
                    GenericRecord value = (GenericRecord) r.value();
                    got.put((Long) value.get("id"), value.toString());
                }
            }
        }
        int mismatched = 0;
        for (Map.Entry<Long, String> e : sent.entrySet()) {
            if (!e.getValue().equals(got.get(e.getKey()))) {
                mismatched++;
            }
        }

        CachedSchemaRegistryClient client = new CachedSchemaRegistryClient(url, 100);
        int refused = 0;
        try {
            client.register(subject, new AvroSchema(V3_BAD));
        } catch (RestClientException e) {
            refused = e.getStatus();
        }
        boolean compatible = client.testCompatibility(subject, new AvroSchema(V3_BAD));
        int v1 = client.getVersion(subject, new AvroSchema(V1));
        int v1Id = client.getSchemaMetadata(subject, v1).getId();
        int copyId = client.register(prefix + "-copy-value", new AvroSchema(V1));
        List<Integer> versions = client.getAllVersions(subject);
        int latest = client.getLatestSchemaMetadata(subject).getVersion();
        return "{\"produced\": " + sent.size() + ", \"consumed\": " + got.size()
                + ", \"mismatched\": " + mismatched + ", \"refused\": " + refused
                + ", \"test_compatible\": " + compatible + ", \"shared_id\": " + (copyId == v1Id)
                + ", \"versions\": " + versions + ", \"latest\": " + latest + "}";
    }
}
