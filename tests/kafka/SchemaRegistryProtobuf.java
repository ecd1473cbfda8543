// Confluent's Java Protobuf serializer (kafka-protobuf-serializer and
// kafka-schema-registry-client 7.0.16) against Shale's schema registry and Kafka listener,
// run as a single file:
//
//   java -cp 'JARS/*' tests/kafka/SchemaRegistryProtobuf.java BOOTSTRAP REGISTRY_URL PREFIX
//
// Messages are DynamicMessages of descriptors built at run time (no protoc). The
// KafkaProtobufSerializer registers the value schema of PREFIX-orders
// (auto.register.schemas: the .proto text its ProtobufSchema prints) and produces 50
// records of shop.Order v1, then 50 of v2 (a field added); KafkaProtobufDeserializer reads
// all 100 back as DynamicMessages of each writer's schema, by the ID the record carries.
// Then CachedSchemaRegistryClient: an incompatible evolution (a field's type changed
// across scalar groups) is refused with 409 and by testCompatibility; the versions and the
// latest read back.
//
// Prints one JSON line of what it saw and exits 0 (the test judges it); exits 1 with the
// error on stderr on a failure of the client itself. A watchdog ends the run after 80 s.

import com.google.protobuf.DescriptorProtos.DescriptorProto;
import com.google.protobuf.DescriptorProtos.FieldDescriptorProto;
import com.google.protobuf.DescriptorProtos.FileDescriptorProto;
import com.google.protobuf.Descriptors.Descriptor;
import com.google.protobuf.Descriptors.FileDescriptor;
import com.google.protobuf.DynamicMessage;
import com.google.protobuf.Message;
import io.confluent.kafka.schemaregistry.client.CachedSchemaRegistryClient;
import io.confluent.kafka.schemaregistry.client.rest.exceptions.RestClientException;
import io.confluent.kafka.schemaregistry.protobuf.ProtobufSchema;
import io.confluent.kafka.serializers.protobuf.KafkaProtobufDeserializer;
import io.confluent.kafka.serializers.protobuf.KafkaProtobufSerializer;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SchemaRegistryProtobuf {
    static final FieldDescriptorProto.Type INT64 = FieldDescriptorProto.Type.TYPE_INT64;
    static final FieldDescriptorProto.Type INT32 = FieldDescriptorProto.Type.TYPE_INT32;
    static final FieldDescriptorProto.Type STRING = FieldDescriptorProto.Type.TYPE_STRING;

    /** shop.Order with the fields given as (name, type) pairs, numbered from 1. */
    static Descriptor order(Object... fields) throws Exception {
        DescriptorProto.Builder m = DescriptorProto.newBuilder().setName("Order");
        for (int i = 0; i < fields.length; i += 2) {
            m.addField(FieldDescriptorProto.newBuilder()
                    .setName((String) fields[i])
                    .setNumber(i / 2 + 1)
                    .setType((FieldDescriptorProto.Type) fields[i + 1])
                    .setLabel(FieldDescriptorProto.Label.LABEL_OPTIONAL));
        }
        FileDescriptorProto file = FileDescriptorProto.newBuilder()
                .setName("shop/order.proto").setPackage("shop").setSyntax("proto3")
                .addMessageType(m).build();
        return FileDescriptor.buildFrom(file, new FileDescriptor[0]).findMessageTypeByName("Order");
    }

    public static void main(String[] args) throws Exception {
        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(80_000);
            } catch (InterruptedException e) {
                return;
            }
            System.err.println("SchemaRegistryProtobuf.java: watchdog: still running after 80 s");
            Runtime.getRuntime().halt(2);
        });
        watchdog.setDaemon(true);
        watchdog.start();
        String bootstrap = args[0], url = args[1], prefix = args[2];
        try {
            System.out.println(run(bootstrap, url, prefix));
            System.exit(0);
        } catch (Exception e) {
            System.err.println("SchemaRegistryProtobuf.java: " + e);
            System.exit(1);
        }
    }

    static String run(String bootstrap, String url, String prefix) throws Exception {
        String topic = prefix + "-orders", subject = topic + "-value";
        Descriptor v1 = order("id", INT64, "item", STRING);
        Descriptor v2 = order("id", INT64, "item", STRING, "qty", INT32);
        Descriptor bad = order("id", STRING, "item", STRING, "qty", INT32);
        Properties admin = new Properties();
        admin.put("bootstrap.servers", bootstrap);
        try (Admin a = Admin.create(admin)) {
            a.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get();
        }

        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("acks", "all");
        p.put("key.serializer", StringSerializer.class.getName());
        p.put("value.serializer", KafkaProtobufSerializer.class.getName());
        p.put("schema.registry.url", url);
        p.put("auto.register.schemas", "true");
        Map<Long, String> sent = new HashMap<>();
        try (KafkaProducer<String, Message> producer = new KafkaProducer<>(p)) {
            long n = 0;
            for (Descriptor d : List.of(v1, v2)) {
                for (int i = 0; i < 50; i++, n++) {
                    DynamicMessage.Builder b = DynamicMessage.newBuilder(d)
                            .setField(d.findFieldByName("id"), n)
                            .setField(d.findFieldByName("item"), "item-" + n);
                    if (d.findFieldByName("qty") != null) {
                        b.setField(d.findFieldByName("qty"), (int) (n % 7));
                    }
                    producer.send(new ProducerRecord<>(topic, Long.toString(n), b.build())).get();
                    sent.put(n, "item-" + n + "/" + (d == v2 ? n % 7 : -1));
                }
            }
        }

        Properties c = new Properties();
        c.put("bootstrap.servers", bootstrap);
        c.put("group.id", prefix + "-reader");
        c.put("auto.offset.reset", "earliest");
        c.put("enable.auto.commit", "false");
        c.put("key.deserializer", StringDeserializer.class.getName());
        c.put("value.deserializer", KafkaProtobufDeserializer.class.getName());
        c.put("schema.registry.url", url);
        Map<Long, String> got = new HashMap<>();
        try (KafkaConsumer<String, Message> consumer = new KafkaConsumer<>(c)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 40_000;
            while (got.size() < sent.size() && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, Message> r : consumer.poll(Duration.ofMillis(200))) {
                    Message m = r.value();
                    Descriptor d = m.getDescriptorForType();
                    long id = (Long) m.getField(d.findFieldByName("id"));
                    Object qty = d.findFieldByName("qty") == null ? null : m.getField(d.findFieldByName("qty"));
                    got.put(id, m.getField(d.findFieldByName("item")) + "/" + (qty == null ? -1 : ((Integer) qty).longValue()));
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
            client.register(subject, new ProtobufSchema(bad));
        } catch (RestClientException e) {
            refused = e.getStatus();
        }
        boolean compatible = client.testCompatibility(subject, new ProtobufSchema(bad));
        List<Integer> versions = client.getAllVersions(subject);
        int latest = client.getLatestSchemaMetadata(subject).getVersion();
        return "{\"produced\": " + sent.size() + ", \"consumed\": " + got.size()
                + ", \"mismatched\": " + mismatched + ", \"refused\": " + refused
                + ", \"test_compatible\": " + compatible + ", \"versions\": " + versions
                + ", \"latest\": " + latest + "}";
    }
}
