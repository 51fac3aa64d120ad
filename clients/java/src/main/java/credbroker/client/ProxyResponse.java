package credbroker.client;

import java.util.Map;

/** The upstream's answer to a proxied call, whatever its status. */
public final class ProxyResponse {
  private final int status;
  private final Map<String, String> headers;
  private final byte[] body;

  ProxyResponse(int status, Map<String, String> headers, byte[] body) {
    this.status = status;
    this.headers = Map.copyOf(headers);
    this.body = body;
  }

  public int status() {
    return status;
  }

  /** Lower-case names; repeated headers joined with ", ". */
  public Map<String, String> headers() {
    return headers;
  }

  public byte[] body() {
    return body.clone();
  }
}
