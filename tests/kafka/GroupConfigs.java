// Group configs (KIP-848's GROUP resource) with Apache Kafka's Java Admin client:
//
//   java -cp 'jars/*' GroupConfigs.java BOOTSTRAP GROUP
//
// Sets consumer.session.timeout.ms=20000 with incrementalAlterConfigs, describes the
// group's configs, then asks for a heartbeat interval above the session timeout, which
// must be refused. Prints one JSON object: {"configs": {name: [value, source]}, "refused": "..."}.
import java.util.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.config.ConfigResource;

public class GroupConfigs {
    public static void main(String[] args) throws Exception {
        try (Admin admin = Admin.create(Map.of("bootstrap.servers", args[0]))) {
            ConfigResource group = new ConfigResource(ConfigResource.Type.GROUP, args[1]);
            AlterConfigOp session = new AlterConfigOp(
                new ConfigEntry("consumer.session.timeout.ms", "20000"), AlterConfigOp.OpType.SET);
            admin.incrementalAlterConfigs(Map.of(group, List.of(session))).all().get();
            Config described = admin.describeConfigs(List.of(group)).all().get().get(group);
            StringBuilder out = new StringBuilder("{\"configs\":{");
            String sep = "";
            for (ConfigEntry e : described.entries()) {
                out.append(sep).append('"').append(e.name()).append("\":[\"").append(e.value())
                    .append("\",\"").append(e.source()).append("\"]");
                sep = ",";
            }
            String refused = "";
            AlterConfigOp tooLong = new AlterConfigOp(
                new ConfigEntry("consumer.heartbeat.interval.ms", "99999999"), AlterConfigOp.OpType.SET);
            try {
                admin.incrementalAlterConfigs(Map.of(group, List.of(tooLong))).all().get();
            } catch (Exception e) {
                refused = e.getCause().getClass().getSimpleName() + ": " + e.getCause().getMessage();
            }
            out.append("},\"refused\":\"").append(refused.replace("\"", "'")).append("\"}");
            System.out.println(out);
        }
    }
}
