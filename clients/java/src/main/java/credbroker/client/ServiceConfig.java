package credbroker.client;

import java.util.List;
import java.util.Map;

/** The standard gRPC service config: retry UNAVAILABLE with exponential back-off. */
final class ServiceConfig {
  private ServiceConfig() {}

  /**
   * Retried on UNAVAILABLE. Not ProxyCall: its UNAVAILABLE can mean the upstream connection was
   * lost after the request was sent, and a POST must not be sent twice. Not PutCredential: an
   * authorization code is single-use.
   */
  static final List<Map<String, String>> RETRIED =
      List.of(
          Map.of("service", "credbroker.v1.CredentialBroker", "method", "GetAuthorization"),
          Map.of("service", "credbroker.v1.CredentialBroker", "method", "ReportRejected"),
          Map.of("service", "credbroker.v1.CredentialAdmin", "method", "GetCredentialStatus"),
          Map.of("service", "credbroker.v1.CredentialAdmin", "method", "ListCredentials"),
          Map.of("service", "credbroker.v1.CredentialAdmin", "method", "DeleteCredential"));

  /** grpc-java wants JSON-shaped maps: numbers as Double. */
  static Map<String, Object> of(int maxAttempts) {
    Map<String, Object> policy =
        Map.of(
            "maxAttempts", (double) maxAttempts,
            "initialBackoff", "0.2s",
            "maxBackoff", "2s",
            "backoffMultiplier", 2.0,
            "retryableStatusCodes", List.of("UNAVAILABLE"));
    return Map.of("methodConfig", List.of(Map.of("name", RETRIED, "retryPolicy", policy)));
  }
}
