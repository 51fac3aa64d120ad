package credbroker.client;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** Headers to attach upstream. {@link #toString()} never shows their values. */
public final class Authorization {
  private final Map<String, String> headers;
  private final Instant expiresAt; // null: does not expire
  private final String fingerprint;

  Authorization(Map<String, String> headers, Instant expiresAt, String fingerprint) {
    this.headers = Map.copyOf(headers);
    this.expiresAt = expiresAt;
    this.fingerprint = fingerprint;
  }

  /** Lower-case header names to values, e.g. {@code authorization}, {@code api-key}. */
  public Map<String, String> headers() {
    return headers;
  }

  /** Empty when the credential does not expire. */
  public Optional<Instant> expiresAt() {
    return Optional.ofNullable(expiresAt);
  }

  /** Short non-reversible id of these headers, for {@code reportRejected}. */
  public String fingerprint() {
    return fingerprint;
  }

  /** How long the headers stay valid after {@code now}. */
  Duration validFor(Instant now) {
    return expiresAt == null ? Duration.ofSeconds(Long.MAX_VALUE) : Duration.between(now, expiresAt);
  }

  /** Header names, without values. */
  public List<String> headerNames() {
    return List.copyOf(headers.keySet());
  }

  @Override
  public String toString() {
    return "Authorization{fingerprint=" + fingerprint + ", headers=" + headerNames() + " [values redacted]}";
  }
}
