import credbroker.client.Authorization;
import credbroker.client.Credbroker;
import credbroker.client.CredbrokerHttp;
import credbroker.client.ProxyResponse;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/** Asks a running broker for a header, calls the upstream with it, and has the broker proxy a call. */
public class Example {
  public static void main(String[] args) throws Exception {
    String target = args.length > 0 ? args[0] : "127.0.0.1:50051";
    String upstream = args.length > 1 ? args[1] : "http://127.0.0.1:8080/pass/data/echo";
    try (Credbroker broker = Credbroker.forTarget(target).build()) {
      Authorization auth = broker.authorization("pass", "jan"); // cached until expiresAt - 30 s
      System.out.println(auth); // values are never printed

      CredbrokerHttp http = new CredbrokerHttp(HttpClient.newHttpClient(), broker, "pass", "jan");
      HttpResponse<String> response =
          http.send(HttpRequest.newBuilder(URI.create(upstream)).build(), HttpResponse.BodyHandlers.ofString());
      System.out.println(response.statusCode() + " " + response.body());

      ProxyResponse proxied = broker.proxyCall("pass", "jan", "GET", "data/echo", Map.of(), new byte[0]);
      System.out.println(proxied.status() + " " + new String(proxied.body(), StandardCharsets.UTF_8));
    }
  }
}
