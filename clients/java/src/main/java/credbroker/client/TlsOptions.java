package credbroker.client;

import io.grpc.netty.GrpcSslContexts;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import java.io.File;
import javax.net.ssl.SSLException;

/**
 * TLS to the broker: the CA bundle that signed its certificate and, for mTLS, the client
 * certificate and key that identify the caller. Paths to PEM files (the key in PKCS#8).
 */
public final class TlsOptions {
  final File caFile;
  final File certFile;
  final File keyFile;
  final String serverName;

  private TlsOptions(File caFile, File certFile, File keyFile, String serverName) {
    this.caFile = caFile;
    this.certFile = certFile;
    this.keyFile = keyFile;
    this.serverName = serverName;
  }

  /** TLS, trusting the CA(s) in {@code caFile} (null: the JDK's trust store). */
  public static TlsOptions tls(File caFile) {
    return new TlsOptions(caFile, null, null, null);
  }

  /** mTLS: also present this client certificate. */
  public TlsOptions withClientCertificate(File certFile, File keyFile) {
    return new TlsOptions(caFile, certFile, keyFile, serverName);
  }

  /** The name to verify in the broker's certificate when it differs from the target's host. */
  public TlsOptions withServerName(String name) {
    return new TlsOptions(caFile, certFile, keyFile, name);
  }

  SslContext sslContext() throws SSLException {
    SslContextBuilder builder = GrpcSslContexts.forClient();
    if (caFile != null) {
      builder.trustManager(caFile);
    }
    if (certFile != null) {
      builder.keyManager(certFile, keyFile);
    }
    try {
      return builder.build();
    } catch (UnsupportedOperationException e) {
      // Debian's libnetty-java strips io.netty.handler.ssl.JdkAlpnApplicationProtocolNegotiator,
      // and gRPC over TLS needs ALPN.
      throw new SSLException("this netty build cannot negotiate ALPN with the JDK's TLS provider "
          + "(Debian's libnetty-java lacks it); use netty from Maven Central for TLS", e);
    }
  }

  /** Whether this netty can do TLS for gRPC with the JDK's provider (ALPN). */
  public static boolean available() {
    try {
      Class.forName("io.netty.handler.ssl.JdkAlpnApplicationProtocolNegotiator");
      return true;
    } catch (ClassNotFoundException e) {
      return false;
    }
  }
}
