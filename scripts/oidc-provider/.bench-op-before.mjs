// The reference provider for bench/run.sh: oidc-provider minting ES256 JWT access tokens for
// client_credentials (the scenario tessera is compared on). PORT: where to listen.
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const PORT = Number(process.env.PORT || 3000);
const API = 'urn:bench:api';
const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwks = { keys: [{ ...(await exportJWK(privateKey)), kid: 'es1', alg: 'ES256', use: 'sig' }] };
const oidc = new Provider(`http://127.0.0.1:${PORT}`, {
  jwks,
  clients: [{ client_id: 'bench', client_secret: 'bench-secret', grant_types: ['client_credentials'], response_types: [], redirect_uris: [], id_token_signed_response_alg: 'ES256' }],
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => API,
      useGrantedResource: async () => false,
      getResourceServerInfo: async () => ({ scope: 'api', audience: API, accessTokenTTL: 3600, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } }),
    },
  },
  cookies: { keys: ['bench-cookie-key'] },
});
oidc.listen(PORT, '127.0.0.1', () => console.log('ready'));
