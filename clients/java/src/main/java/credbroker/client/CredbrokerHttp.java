package credbroker.client;

import java.io.IOException;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

/**
 * Sends {@code java.net.http} requests with credbroker's headers for one credential. On a 401
 * it reports the header, fetches a fresh one and sends the request once more — only when the
 * broker handed out a different header (a static credential would only get the same 401
 * again). {@code HttpRequest} bodies are publishers that can be subscribed again, so the body is
 * replayed.
 */
public final class CredbrokerHttp {
  private final HttpClient http;
  private final Credbroker broker;
  private final String provider;
  private final String subject;

  public CredbrokerHttp(HttpClient http, Credbroker broker, String provider, String subject) {
    this.http = http;
    this.broker = broker;
    this.provider = provider;
    this.subject = subject;
  }

  /** Like {@link HttpClient#send}, with the broker's headers and 401 handling. */
  public <T> HttpResponse<T> send(HttpRequest request, HttpResponse.BodyHandler<T> handler)
      throws IOException, InterruptedException {
    Authorization used = broker.authorization(provider, subject);
    HttpResponse<T> response = http.send(with(request, used), handler);
    if (response.statusCode() != 401) {
      return response;
    }
    broker.reportRejected(provider, subject, used.fingerprint());
    Authorization fresh = broker.authorization(provider, subject);
    if (fresh.fingerprint().equals(used.fingerprint())) {
      return response;
    }
    return http.send(with(request, fresh), handler);
  }

  private static HttpRequest with(HttpRequest request, Authorization authorization) {
    HttpRequest.Builder copy = HttpRequest.newBuilder(request, (name, value) -> true);
    authorization.headers().forEach(copy::setHeader);
    return copy.build();
  }
}
