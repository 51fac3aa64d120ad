package credbroker.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import credbroker.v1.Broker;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The Java client against the real broker and the fake upstream. */
class CredbrokerTest {
  private static final String[] PASS_USER = {"demo.pashouder", "demo-password-1"};
  private static final String[] JO_USER = {"demo-application", "demo-password-1"};
  private Harness h;

  @BeforeEach
  void normalFake() throws Exception {
    h = Harness.get();
    h.normal();
  }

  /** Counts calls per method (above the retries: one count per call). */
  static final class Counter implements ClientInterceptor {
    final Map<String, AtomicInteger> calls = new ConcurrentHashMap<>();

    @Override
    public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
      calls.computeIfAbsent(method.getBareMethodName(), k -> new AtomicInteger()).incrementAndGet();
      return next.newCall(method, options);
    }

    int get(String name) {
      return calls.getOrDefault(name, new AtomicInteger()).get();
    }
  }

  /** A generous deadline: the machine is shared and loaded. */
  private Credbroker.Builder client() {
    return Credbroker.forTarget(h.brokerTarget).timeout(Duration.ofSeconds(30));
  }

  private static String subject() {
    return "java-" + UUID.randomUUID().toString().substring(0, 12);
  }

  private static void putLogin(Credbroker broker, String provider, String subject, String[] user) {
    broker.admin().putCredential(Broker.PutCredentialRequest.newBuilder().setProvider(provider).setSubject(subject)
        .setUsernamePassword(Broker.UsernamePassword.newBuilder().setUsername(user[0]).setPassword(user[1])).build());
  }

  @Test
  void cachedHeaderIsReusedAndRenewedBeforeExpiry() throws Exception {
    h.control("lifetimes", "{\"jouwomgeving_jwt_secs\":6}");
    Counter counter = new Counter();
    String who = subject();
    try (Credbroker broker = client().margin(Duration.ZERO).interceptor(counter).build()) {
      putLogin(broker, "jouwomgeving-demo", who, JO_USER);
      Duration two = Duration.ofSeconds(2);
      Authorization first = broker.authorization("jouwomgeving-demo", who, two);
      assertTrue(first.headers().get("authorization").startsWith("JWT "));
      assertSame(first, broker.authorization("jouwomgeving-demo", who, two));
      assertEquals(1, counter.get("GetAuthorization"), "the second call was served from the cache");
      Instant end = Instant.now().plusSeconds(60);
      Authorization current;
      int calls = 0;
      do {
        assertTrue(Instant.now().isBefore(end), "the header was never renewed");
        Thread.sleep(50);
        current = broker.authorization("jouwomgeving-demo", who, two);
        calls++;
        Duration left = Duration.between(Instant.now(), current.expiresAt().orElseThrow());
        assertTrue(left.toMillis() > 1500, "served a header with only " + left + " left");
      } while (current.fingerprint().equals(first.fingerprint()));
      assertTrue(current.expiresAt().get().isAfter(first.expiresAt().get()));
      assertTrue(Instant.now().isBefore(first.expiresAt().get()), "renewed before the old header expired");
      int rpcs = counter.get("GetAuthorization");
      assertTrue(rpcs <= 4 && calls > 4, rpcs + " RPCs for " + calls + " calls");
    }
  }

  @Test
  void a401LeadsToOneReportAndOneRetry() throws Exception {
    Counter counter = new Counter();
    String who = subject();
    try (Credbroker broker = client().interceptor(counter).build()) {
      putLogin(broker, "pass", who, PASS_USER);
      HttpClient plain = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
      CredbrokerHttp http = new CredbrokerHttp(plain, broker, "pass", who);
      HttpRequest echo = HttpRequest.newBuilder(URI.create(h.fakeBase + "pass/data/echo")).build();
      assertEquals(200, http.send(echo, HttpResponse.BodyHandlers.discarding()).statusCode());
      // End the PASS session behind the broker's back: its header now gets 401.
      HttpRequest.Builder logout = HttpRequest.newBuilder(URI.create(h.fakeBase + "pass/token/v1/login")).DELETE();
      broker.authorization("pass", who).headers().forEach(logout::header);
      assertTrue(plain.send(logout.build(), HttpResponse.BodyHandlers.discarding()).statusCode() < 300);
      int loginsBefore = h.ledger("pass", "Login").size();
      HttpRequest mirror = HttpRequest.newBuilder(URI.create(h.fakeBase + "pass/data/mirror"))
          .POST(HttpRequest.BodyPublishers.ofString("replayed body")).build();
      HttpResponse<String> response = http.send(mirror, HttpResponse.BodyHandlers.ofString());
      assertEquals(200, response.statusCode());
      assertEquals("replayed body", response.body());
      assertEquals(1, counter.get("ReportRejected"));
      assertEquals(loginsBefore + 1, h.ledger("pass", "Login").size(), "the broker renewed once");
    }
  }

  @Test
  void a401TheBrokerCannotRenewIsReportedOnceAndReturned() throws Exception {
    Counter counter = new Counter();
    String who = subject();
    try (Credbroker broker = client().interceptor(counter).build()) {
      // A BRO token the fake does not know: static, so the broker has nothing to renew.
      broker.admin().putCredential(Broker.PutCredentialRequest.newBuilder().setProvider("bro").setSubject(who)
          .setBroToken(Broker.BroToken.newBuilder().setUsername("0dce6fc98256|999999999|1").setCode("ab".repeat(32)))
          .build());
      CredbrokerHttp http = new CredbrokerHttp(HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build(), broker, "bro", who);
      HttpRequest echo = HttpRequest.newBuilder(URI.create(h.fakeBase + "bro/api/v2/data/echo")).build();
      HttpResponse<Void> response = http.send(echo, HttpResponse.BodyHandlers.discarding());
      assertEquals(401, response.statusCode());
      assertTrue(response.previousResponse().isEmpty());
      assertEquals(1, counter.get("ReportRejected"));
    }
  }

  @Test
  void proxyCallRoundTripsABody() throws Exception {
    String who = subject();
    byte[] body = new byte[10_000];
    for (int i = 0; i < body.length; i++) {
      body[i] = (byte) (i * 31);
    }
    try (Credbroker broker = client().build()) {
      putLogin(broker, "pass", who, PASS_USER);
      ProxyResponse response = broker.proxyCall("pass", who, "POST", "data/mirror",
          Map.of("content-type", "application/octet-stream"), body);
      assertEquals(200, response.status());
      assertArrayEquals(body, response.body());
    }
  }

  @Test
  void unavailableIsRetried() throws Exception {
    String who = subject();
    try (Credbroker broker = client().build()) {
      putLogin(broker, "jouwomgeving-demo", who, JO_USER);
      h.control("fail", "{\"provider\":\"jouwomgeving\",\"status\":503,\"times\":1}");
      Authorization auth = broker.authorization("jouwomgeving-demo", who);
      assertTrue(auth.headers().get("authorization").startsWith("JWT "));
      List<String> logins = h.ledger("jouwomgeving", "Login");
      assertTrue(logins.get(logins.size() - 2).contains("InjectedStatus(503)"), logins.toString());
      assertTrue(logins.get(logins.size() - 1).contains("\"Replied\""), logins.toString());
    }
  }

  @Test
  void withoutRetriesUnavailableCarriesTheBrokersMessage() throws Exception {
    String who = subject();
    try (Credbroker broker = client().maxAttempts(1).build()) {
      putLogin(broker, "jouwomgeving-demo", who, JO_USER);
      h.control("fail", "{\"provider\":\"jouwomgeving\",\"status\":503,\"times\":1}");
      CredbrokerException e = assertThrows(CredbrokerException.class, () -> broker.authorization("jouwomgeving-demo", who));
      assertEquals(Status.Code.UNAVAILABLE, e.code());
      assertTrue(e.retryLater());
      assertTrue(e.brokerMessage().contains("503"), e.brokerMessage());
    }
  }

  @Test
  void errorsCarryTheBrokersCodeAndNoSecret() throws Exception {
    try (Credbroker broker = client().bearerToken(() -> "bearer-secret-123").build()) {
      CredbrokerException missing = assertThrows(CredbrokerException.class, () -> broker.authorization("no-such-provider", "x"));
      assertEquals(Status.Code.NOT_FOUND, missing.code());
      assertTrue(missing.brokerMessage().contains("no-such-provider"));
      assertFalse(missing.toString().contains("bearer-secret-123"));
      CredbrokerException bad = assertThrows(CredbrokerException.class,
          () -> broker.proxyCall("pass", "", "GET", "../escape", Map.of(), new byte[0]));
      assertEquals(Status.Code.INVALID_ARGUMENT, bad.code());
    }
  }

  @Test
  void authorizationToStringHidesTheValues() {
    Authorization a = new Authorization(Map.of("authorization", "Bearer s3cret"), null, "f");
    assertFalse(a.toString().contains("s3cret"), a.toString());
  }

  @Test
  void retryPolicyCoversUnavailableAndNotProxyCalls() {
    String config = ServiceConfig.of(4).toString();
    assertTrue(config.contains("retryableStatusCodes=[UNAVAILABLE]") && config.contains("GetAuthorization"), config);
    assertFalse(config.contains("ProxyCall"), config);
  }
}
