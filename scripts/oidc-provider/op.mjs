// The reference OpenID provider (panva/oidc-provider, certified) for tessera's OIDC connector tests.
// PORT: where to listen; RP_REDIRECT: the redirect URI of tessera's connector; RP_POST_LOGOUT
// (optional): where its RP-initiated logout may send the browser back. Any login/password is accepted
// by the built-in development interactions.
import Provider from 'oidc-provider';

const PORT = Number(process.env.PORT || 3000);
const ISSUER = `http://127.0.0.1:${PORT}`;
const users = {
  alice: { sub: 'alice', email: 'alice@op.example', email_verified: true, name: 'Alice Reference', groups: ['admins'] },
};
const oidc = new Provider(ISSUER, {
  clients: [{
    client_id: 'tessera',
    client_secret: 'tessera-secret',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [process.env.RP_REDIRECT],
    post_logout_redirect_uris: process.env.RP_POST_LOGOUT ? [process.env.RP_POST_LOGOUT] : [],
  }],
  features: { devInteractions: { enabled: true } },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => users[id] ?? { sub: id, email: `${id}@op.example`, email_verified: true, name: id, groups: [] },
  }),
  issueRefreshToken: async () => true,
  cookies: { keys: ['tessera-test-cookie-key'] },
});
oidc.listen(PORT, '127.0.0.1', () => console.log(`listening ${ISSUER}`));
