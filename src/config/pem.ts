/** Checks of PEM text Node's TLS stack accepts without complaint (it skips a CA it cannot parse). */
import { X509Certificate } from 'node:crypto';

/** The certificates of a CA bundle; throws when one does not parse, or none is there. */
export function caCertificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error('no certificate in the bundle');
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (err) {
      throw new Error(`certificate ${i + 1} of the bundle does not parse: ${(err as Error).message}`);
    }
  });
}
