package credbroker.client;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The real broker binary and the fake upstream (with its control API), started once for the
 * suite and stopped at exit. Binaries: CREDBROKER_BIN and FAKE_UPSTREAM_BIN, by default the ones
 * the cargo test build produced in target/debug/.
 */
final class Harness {
  private static final Duration DEADLINE = Duration.ofSeconds(60); // the machine is shared and loaded
  private static Harness instance;

  final String fakeBase;
  final String fakeControl;
  final String brokerTarget;

  static synchronized Harness get() throws Exception {
    if (instance == null) {
      instance = new Harness();
    }
    return instance;
  }

  private Harness() throws Exception {
    Child fake = new Child(new ProcessBuilder(binary("FAKE_UPSTREAM_BIN", "fake-upstream"),
        "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"));
    fakeControl = fake.waitFor("control on (http://\\S+/)");
    fakeBase = fake.waitFor("fake-upstream listening on (http://\\S+/)");
    ProcessBuilder broker = new ProcessBuilder(binary("CREDBROKER_BIN", "credbroker"), "serve");
    broker.environment().putAll(Map.of(
        "CREDBROKER__SERVER__LISTEN", "127.0.0.1:0",
        "CREDBROKER__TELEMETRY__LOG_FORMAT", "json",
        "CREDBROKER__PROVIDERS__PASS__API_BASE_URL", fakeBase + "pass/",
        "CREDBROKER__PROVIDERS__BRO__API_BASE_URL", fakeBase + "bro/api/v2/",
        "CREDBROKER__PROVIDERS__PASSOLUTION__API_BASE_URL", fakeBase + "passolution/api/v2/",
        "CREDBROKER__PROVIDERS__PASSOLUTION__TOKEN_URL", fakeBase + "passolution/oauth/token",
        "CREDBROKER__PROVIDERS__JOUWOMGEVING_DEMO__API_BASE_URL", fakeBase + "jouwomgeving/api/",
        // The 401 tests log a session out right after it was handed out; the broker ignores
        // reports of headers younger than this (2 s by default, against abuse).
        "CREDBROKER__REFRESH__REJECTED_MIN_AGE", "0s"));
    brokerTarget = new Child(broker).waitFor("(?=.*credbroker listening).*\"addr\":\"([0-9.:]+)\"");
  }

  private static String binary(String env, String name) {
    String path = System.getenv(env);
    return path != null ? path : Path.of("..", "..", "target", "debug", name).toString();
  }

  /** A child process whose output lines are collected; destroyed when the JVM exits. */
  private static final class Child {
    private final Process process;
    private final List<String> lines = new ArrayList<>();

    Child(ProcessBuilder builder) throws IOException {
      process = builder.redirectErrorStream(true).start();
      Runtime.getRuntime().addShutdownHook(new Thread(process::destroy));
      Thread reader = new Thread(() -> {
        try (BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream()))) {
          for (String line; (line = out.readLine()) != null; ) {
            synchronized (lines) {
              lines.add(line);
              lines.notifyAll();
            }
          }
        } catch (IOException ignored) {
          // the process ended
        }
      });
      reader.setDaemon(true);
      reader.start();
    }

    String waitFor(String pattern) throws InterruptedException {
      Pattern regex = Pattern.compile(pattern);
      Instant end = Instant.now().plus(DEADLINE);
      synchronized (lines) {
        while (Instant.now().isBefore(end)) {
          for (String line : lines) {
            Matcher m = regex.matcher(line);
            if (m.find()) {
              return m.group(1);
            }
          }
          if (!process.isAlive()) {
            break;
          }
          lines.wait(500);
        }
        throw new IllegalStateException("no " + pattern + " in the output: " + lines);
      }
    }
  }

  // --- the fake's control API ---

  /**
   * A fresh client (and connection) per control call: the control server closes idle
   * keep-alive connections (hyper's header-read timeout), and a pooled one can be closed just
   * as it is reused.
   */
  private static HttpClient http() {
    return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
  }

  void control(String path, String json) throws Exception {
    HttpRequest request = HttpRequest.newBuilder(URI.create(fakeControl + path))
        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build();
    int status = http().send(request, HttpResponse.BodyHandlers.discarding()).statusCode();
    if (status >= 300) {
      throw new IllegalStateException("control " + path + ": " + status);
    }
  }

  /** Ledger entries of one provider and operation, as JSON object strings, oldest first. */
  List<String> ledger(String provider, String operation) throws Exception {
    String body = http().send(HttpRequest.newBuilder(URI.create(fakeControl + "ledger")).build(),
        HttpResponse.BodyHandlers.ofString()).body();
    List<String> matching = new ArrayList<>();
    Matcher entry = Pattern.compile("\\{[^{}]*\\}").matcher(body);
    while (entry.find()) {
      String e = entry.group();
      if (e.contains("\"provider\":\"" + provider + "\"") && e.contains("\"operation\":\"" + operation + "\"")) {
        matching.add(e);
      }
    }
    return matching;
  }

  void normal() throws Exception {
    control("reset", "{}");
    control("lifetimes", "{\"jouwomgeving_jwt_secs\":300,\"pass_max_lifetime_secs\":604800}");
  }
}
