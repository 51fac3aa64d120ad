package credbroker.client;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * A non-OK status from the broker, with its code and message unchanged. The broker's messages
 * never carry a secret; the exception never includes the request, and it keeps no cause (the
 * gRPC exception could carry request metadata).
 */
public class CredbrokerException extends RuntimeException {
  private final Status.Code code;
  private final String brokerMessage;

  CredbrokerException(Status.Code code, String brokerMessage) {
    super(code + ": " + brokerMessage, null, false, true);
    this.code = code;
    this.brokerMessage = brokerMessage;
  }

  static CredbrokerException from(StatusRuntimeException e) {
    Status status = e.getStatus();
    String message = status.getDescription() == null ? "" : status.getDescription();
    return new CredbrokerException(status.getCode(), message);
  }

  /** The gRPC status code, e.g. NOT_FOUND, FAILED_PRECONDITION, UNAVAILABLE. */
  public Status.Code code() {
    return code;
  }

  /** The broker's own message. */
  public String brokerMessage() {
    return brokerMessage;
  }

  /** FAILED_PRECONDITION: the credential needs re-authorization by an operator. */
  public boolean reauthRequired() {
    return code == Status.Code.FAILED_PRECONDITION;
  }

  /** UNAVAILABLE (after the retries) or DEADLINE_EXCEEDED: trying later may help. */
  public boolean retryLater() {
    return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED;
  }
}
