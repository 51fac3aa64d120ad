package credbroker.client;

import com.google.protobuf.ByteString;
import credbroker.v1.Broker;
import credbroker.v1.CredentialAdminGrpc;
import credbroker.v1.CredentialBrokerGrpc;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import javax.net.ssl.SSLException;

/**
 * A connection to credbroker. {@link #authorization} serves a cached header while it stays
 * valid for at least {@code max(margin, minValidity)}; {@link #reportRejected} tells the broker
 * a header got a 401 (it renews it if still current) and drops it from the cache. Every call
 * has a deadline; UNAVAILABLE is retried by gRPC's standard retry policy. Thread-safe.
 */
public final class Credbroker implements AutoCloseable {
  private final ManagedChannel channel;
  private final CredentialBrokerGrpc.CredentialBrokerBlockingStub broker;
  private final Duration timeout;
  private final Duration margin;
  private final Clock clock;
  private final Map<List<String>, Authorization> cache = new ConcurrentHashMap<>();

  private Credbroker(Builder b) throws SSLException {
    NettyChannelBuilder channel = NettyChannelBuilder.forTarget(b.target);
    if (b.tls == null) {
      channel.usePlaintext();
    } else {
      channel.sslContext(b.tls.sslContext());
      if (b.tls.serverName != null) {
        channel.overrideAuthority(b.tls.serverName);
      }
    }
    if (b.maxAttempts > 1) {
      channel.defaultServiceConfig(ServiceConfig.of(b.maxAttempts)).enableRetry();
    } else {
      channel.disableRetry();
    }
    List<ClientInterceptor> interceptors = new ArrayList<>(b.interceptors);
    if (b.bearerToken != null) {
      interceptors.add(new BearerToken(b.bearerToken));
    }
    this.channel = channel.intercept(interceptors).build();
    this.broker = CredentialBrokerGrpc.newBlockingStub(this.channel);
    this.timeout = b.timeout;
    this.margin = b.margin;
    this.clock = b.clock;
  }

  /** Starts a builder for the broker at {@code host:port}. */
  public static Builder forTarget(String target) {
    return new Builder(target);
  }

  /** Headers valid for at least {@code minValidity} (and the margin): cached, or fetched. */
  public Authorization authorization(String provider, String subject, Duration minValidity) {
    List<String> key = List.of(provider, subject);
    Authorization cached = cache.get(key);
    Duration need = margin.compareTo(minValidity) > 0 ? margin : minValidity;
    if (cached != null && cached.validFor(clock.instant()).compareTo(need) > 0) {
      return cached;
    }
    Authorization fresh = fetch(provider, subject, minValidity);
    cache.put(key, fresh);
    return fresh;
  }

  /** {@link #authorization(String, String, Duration)} with a 30 s minimum validity. */
  public Authorization authorization(String provider, String subject) {
    return authorization(provider, subject, Duration.ofSeconds(30));
  }

  /** The header with {@code fingerprint} was answered 401 upstream. */
  public void reportRejected(String provider, String subject, String fingerprint) {
    cache.computeIfPresent(List.of(provider, subject), (k, a) -> a.fingerprint().equals(fingerprint) ? null : a);
    Broker.ReportRejectedRequest request =
        Broker.ReportRejectedRequest.newBuilder()
            .setProvider(provider)
            .setSubject(subject)
            .setTokenFingerprint(fingerprint)
            .build();
    call(() -> stub().reportRejected(request));
  }

  /**
   * The broker makes the upstream call with the credential attached; {@code path} is relative
   * to the provider's API base. Never retried: a POST must not be sent twice.
   */
  public ProxyResponse proxyCall(String provider, String subject, String method, String path, Map<String, String> headers, byte[] body) {
    Broker.ProxyCallRequest.Builder request =
        Broker.ProxyCallRequest.newBuilder()
            .setProvider(provider)
            .setSubject(subject)
            .setMethod(method)
            .setPath(path)
            .setBody(ByteString.copyFrom(body));
    headers.forEach((n, v) -> request.addHeaders(Broker.Header.newBuilder().setName(n).setValue(v)));
    Broker.ProxyCallResponse response = call(() -> stub().proxyCall(request.build()));
    Map<String, String> answer = new LinkedHashMap<>();
    response.getHeadersList().forEach(h -> answer.merge(h.getName(), h.getValue(), (a, b) -> a + ", " + b));
    return new ProxyResponse(response.getStatus(), answer, response.getBody().toByteArray());
  }

  /** The CredentialAdmin API on the same channel, with this client's deadline. */
  public CredentialAdminGrpc.CredentialAdminBlockingStub admin() {
    return CredentialAdminGrpc.newBlockingStub(channel).withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  @Override
  public void close() {
    channel.shutdown();
  }

  private Authorization fetch(String provider, String subject, Duration minValidity) {
    Broker.GetAuthorizationRequest request =
        Broker.GetAuthorizationRequest.newBuilder()
            .setProvider(provider)
            .setSubject(subject)
            .setMinValidity(
                com.google.protobuf.Duration.newBuilder()
                    .setSeconds(minValidity.getSeconds())
                    .setNanos(minValidity.getNano()))
            .build();
    Broker.GetAuthorizationResponse response = call(() -> stub().getAuthorization(request));
    Map<String, String> headers = new LinkedHashMap<>();
    response.getHeadersList().forEach(h -> headers.put(h.getName(), h.getValue()));
    Instant expiresAt =
        response.hasExpiresAt()
            ? Instant.ofEpochSecond(response.getExpiresAt().getSeconds(), response.getExpiresAt().getNanos())
            : null;
    return new Authorization(headers, expiresAt, response.getTokenFingerprint());
  }

  /** A stub with a fresh deadline: a deadline is absolute, so one per call. */
  private CredentialBrokerGrpc.CredentialBrokerBlockingStub stub() {
    return broker.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  private static <T> T call(Supplier<T> rpc) {
    try {
      return rpc.get();
    } catch (StatusRuntimeException e) {
      throw CredbrokerException.from(e);
    }
  }

  /** Options for {@link Credbroker}. */
  public static final class Builder {
    private final String target;
    private TlsOptions tls;
    private Supplier<String> bearerToken;
    private Duration timeout = Duration.ofSeconds(5);
    private int maxAttempts = 4;
    private Duration margin = Duration.ofSeconds(30);
    private final List<ClientInterceptor> interceptors = new ArrayList<>();
    private Clock clock = Clock.systemUTC();

    private Builder(String target) {
      this.target = target;
    }

    /** TLS or mTLS; plaintext without it. */
    public Builder tls(TlsOptions tls) {
      this.tls = tls;
      return this;
    }

    /** Sends {@code authorization: Bearer <token>} on every call (asked per call, so it may rotate). */
    public Builder bearerToken(Supplier<String> token) {
      this.bearerToken = token;
      return this;
    }

    /** The deadline of every call (default 5 s). */
    public Builder timeout(Duration timeout) {
      this.timeout = timeout;
      return this;
    }

    /** Attempts on UNAVAILABLE (default 4; 1 turns retries off). */
    public Builder maxAttempts(int maxAttempts) {
      this.maxAttempts = maxAttempts;
      return this;
    }

    /** Renew a cached header this long before it expires (at least minValidity; default 30 s). */
    public Builder margin(Duration margin) {
      this.margin = margin;
      return this;
    }

    /** An extra client interceptor (metrics, tracing). */
    public Builder interceptor(ClientInterceptor interceptor) {
      interceptors.add(interceptor);
      return this;
    }

    /** For tests. */
    public Builder clock(Clock clock) {
      this.clock = clock;
      return this;
    }

    public Credbroker build() throws SSLException {
      return new Credbroker(this);
    }
  }
}
