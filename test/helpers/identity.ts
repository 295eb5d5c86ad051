/**
 * Expected identities, written out for the tests (never taken from src/). The identity an agent key gives, as the policy sees it in `input.agent` (docs/policy.md): the
 * id and method, every member of the other methods empty.
 */
export function agentKeyIdentity(id: string): Record<string, unknown> {
  return {
    id,
    method: 'api_key',
    issuer: null,
    subject: null,
    client_id: null,
    scopes: [],
    claims: {},
    on_behalf_of: null,
    spiffe_id: null,
    cert_sha256: null,
  };
}
