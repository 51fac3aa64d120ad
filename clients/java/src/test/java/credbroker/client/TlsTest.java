package credbroker.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import credbroker.v1.Broker;
import credbroker.v1.CredentialBrokerGrpc;
import io.grpc.Metadata;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.netty.handler.ssl.ClientAuth;
import java.io.File;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * TLS/mTLS and the bearer token against a stand-in TLS server (grpc-java's own, in-process).
 * credbroker's server-side TLS is built separately ([server.tls]); this checks the client's
 * side: it trusts only the given CA, presents its certificate, and sends the bearer token.
 */
class TlsTest {
  private static final File CERTS = new File("../testdata/tls");
  private static final AtomicReference<String> seen = new AtomicReference<>("");
  private static Server server;

  @BeforeEach
  void needsAlpn() {
    Assumptions.assumeTrue(TlsOptions.available(),
        "skipped: Debian's libnetty-java lacks JdkAlpnApplicationProtocolNegotiator, so grpc-java cannot do TLS "
            + "with these jars (see README); with netty from Maven Central this runs (not possible here)");
  }

  @BeforeAll
  static void start() throws Exception {
    if (!TlsOptions.available()) {
      return;
    }
    ServerInterceptor capture = new ServerInterceptor() {
      @Override
      public <Q, R> ServerCall.Listener<Q> interceptCall(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        seen.set(headers.get(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER)));
        return next.startCall(call, headers);
      }
    };
    CredentialBrokerGrpc.CredentialBrokerImplBase echo = new CredentialBrokerGrpc.CredentialBrokerImplBase() {
      @Override
      public void getAuthorization(Broker.GetAuthorizationRequest request, StreamObserver<Broker.GetAuthorizationResponse> out) {
        out.onNext(Broker.GetAuthorizationResponse.newBuilder().setTokenFingerprint("f")
            .addHeaders(Broker.Header.newBuilder().setName("seen-authorization").setValue(seen.get())).build());
        out.onCompleted();
      }
    };
    server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0))
        .sslContext(GrpcSslContexts.forServer(new File(CERTS, "server.pem"), new File(CERTS, "server.key"))
            .trustManager(new File(CERTS, "ca.pem")).clientAuth(ClientAuth.REQUIRE).build())
        .addService(ServerInterceptors.intercept(echo, capture))
        .build()
        .start();
  }

  @AfterAll
  static void stop() {
    if (server != null) {
      server.shutdownNow();
    }
  }

  private static String target() {
    return "localhost:" + server.getPort();
  }

  @Test
  void mtlsWithABearerToken() throws Exception {
    TlsOptions tls = TlsOptions.tls(new File(CERTS, "ca.pem"))
        .withClientCertificate(new File(CERTS, "client.pem"), new File(CERTS, "client.key"));
    try (Credbroker broker = Credbroker.forTarget(target()).tls(tls).bearerToken(() -> "tok-1")
        .timeout(Duration.ofSeconds(30)).build()) {
      assertEquals("Bearer tok-1", broker.authorization("p", "s").headers().get("seen-authorization"));
    }
  }

  @Test
  void refusedWithoutAClientCertificate() throws Exception {
    try (Credbroker broker = Credbroker.forTarget(target()).tls(TlsOptions.tls(new File(CERTS, "ca.pem")))
        .maxAttempts(1).timeout(Duration.ofSeconds(10)).build()) {
      assertThrows(CredbrokerException.class, () -> broker.authorization("p", "s"));
    }
  }

  @Test
  void refusedWithAnUntrustedCa() throws Exception {
    TlsOptions tls = TlsOptions.tls(new File(CERTS, "client.pem"))
        .withClientCertificate(new File(CERTS, "client.pem"), new File(CERTS, "client.key"));
    try (Credbroker broker = Credbroker.forTarget(target()).tls(tls).maxAttempts(1).timeout(Duration.ofSeconds(10)).build()) {
      assertThrows(CredbrokerException.class, () -> broker.authorization("p", "s"));
    }
  }
}
