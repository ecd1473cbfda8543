// Apache Kafka's Java Admin on a share group, for the share tests:
//
//   java -cp 'jars/*' ShareAdmin.java BOOTSTRAP GROUP ACTION [TOPIC OFFSET]
//
// ACTION is `describe` ({"state","members","assignor"}), `offsets` ({"p0": start, ...} of
// every partition with state), `alter` (partition 0 of TOPIC to OFFSET), `delete-offsets`
// (TOPIC's state) or `delete-group`. Prints one JSON line: the result, or {"error": the
// exception's simple name} when the broker refused.
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.TopicPartition;

public class ShareAdmin {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], group = args[1], action = args[2];
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            System.out.println(run(admin, group, action, args));
        } catch (ExecutionException e) {
            System.out.println("{\"error\":\"" + e.getCause().getClass().getSimpleName() + "\"}");
        }
    }

    static String run(Admin admin, String group, String action, String[] args) throws Exception {
        switch (action) {
            case "describe": {
                ShareGroupDescription d =
                    admin.describeShareGroups(List.of(group)).describedGroups().get(group).get();
                return "{\"state\":\"" + d.groupState() + "\",\"members\":" + d.members().size()
                    + ",\"epoch\":" + d.groupEpoch() + "}";
            }
            case "offsets": {
                Map<TopicPartition, SharePartitionOffsetInfo> offsets = admin
                    .listShareGroupOffsets(Map.of(group, new ListShareGroupOffsetsSpec()))
                    .partitionsToOffsetInfo(group).get();
                StringBuilder out = new StringBuilder("{");
                new TreeMap<String, Long>() {{
                    offsets.forEach((tp, o) -> put(tp.topic() + "-" + tp.partition(),
                        o == null ? -1L : o.startOffset()));
                }}.forEach((k, v) -> {
                    if (out.length() > 1) out.append(',');
                    out.append('"').append(k).append("\":").append(v);
                });
                return out.append('}').toString();
            }
            case "alter": {
                TopicPartition tp = new TopicPartition(args[3], 0);
                admin.alterShareGroupOffsets(group, Map.of(tp, Long.parseLong(args[4]))).all().get();
                return "{\"ok\":true}";
            }
            case "delete-offsets":
                admin.deleteShareGroupOffsets(group, Set.of(args[3])).all().get();
                return "{\"ok\":true}";
            case "delete-group":
                admin.deleteShareGroups(List.of(group)).all().get();
                return "{\"ok\":true}";
            default:
                throw new IllegalArgumentException("unknown action " + action);
        }
    }
}
