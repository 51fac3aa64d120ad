package credbroker.client;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import javax.net.ssl.SSLException;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** Where netty cannot do TLS for gRPC (Debian's jars), the client says so instead of failing later. */
class TlsUnavailableTest {
  @Test
  void tlsOnANettyWithoutAlpnSaysWhy() {
    Assumptions.assumeFalse(TlsOptions.available(), "this netty has ALPN: TlsTest runs instead");
    TlsOptions tls = TlsOptions.tls(new File("../testdata/tls/ca.pem"));
    SSLException e = assertThrows(SSLException.class, () -> Credbroker.forTarget("localhost:1").tls(tls).build());
    assertTrue(e.getMessage().contains("ALPN"), e.getMessage());
  }
}
