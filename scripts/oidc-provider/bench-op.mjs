// The reference provider for bench/run.sh: oidc-provider minting ES256 JWT access tokens for
// client_credentials (the scenario tessera is compared on). PORT: where to listen.
//
// Measured at its best, as it is deployed, on the one core run.sh pins it to:
//   NODE_ENV=production UV_THREADPOOL_SIZE=1 runtime/node_modules/.bin/node bench-op.mjs
// CPU per token against the system's Node 20 (both loaded at once on one core, so the VM's drift cancels):
// - Node.js: the newest LTS oidc-provider supports (runtime/package.json; on Node 20 oidc-provider 9 warns
//   "Unsupported runtime"). Node 22 spends 6-7 % less, Node 24 18-19 % less: among other things its
//   AsyncLocalStorage, which oidc-provider keeps per request, no longer runs a hook on every promise (on
//   Node 22 --experimental-async-context-frame alone saves ~10 %).
// - UV_THREADPOOL_SIZE=1: WebCrypto signs each token on libuv's thread pool; on one core the default four
//   threads only add context switches: 13-15 % less.
// - NODE_ENV=production: no effect in oidc-provider 9.13 (koa only stores it in app.env); set as deployed.
// Together 25-28 % less CPU per token. It warns below (in run.sh's log) when run any other way.
import Provider from 'oidc-provider';
import { generateKeyPair, exportJWK } from 'jose';

const LTS_AT_LEAST = 22;
const major = Number(process.versions.node.split('.')[0]);
const slower = [];
if (major < LTS_AT_LEAST || !process.release.lts) slower.push(`Node.js ${process.version} (not an LTS >= ${LTS_AT_LEAST})`);
if (process.env.NODE_ENV !== 'production') slower.push(`NODE_ENV=${process.env.NODE_ENV ?? ''} (not production)`);
if (process.env.UV_THREADPOOL_SIZE !== '1') slower.push(`UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? ''} (not 1)`);
console.log(`bench-op: Node.js ${process.version}, NODE_ENV=${process.env.NODE_ENV ?? ''}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? ''}`);
if (slower.length) console.warn(`bench-op WARNING: not the reference at its best: ${slower.join(', ')}`);

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
