// Signed joins: a join token is a JWT whose `sub` is the card_id and whose
// `app_id` claim, when present, is the app_id; `exp` is required. Verified
// with jose (5.x: it ships CommonJS; 6 is ESM only) in the shard threads; the
// main thread builds one at start-up too, so a bad key stops start-up.

import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import type { WsErrorCode } from './errors';

/** What a shard needs to verify join tokens (plain data: it crosses to the threads in workerData). */
export interface JoinAuth {
  /** HS256 secret, or '' when a key file is used. */
  readonly secret: string;
  /** Contents of auth.join_key_file: a PEM public key or a JWKS (JSON); '' when a secret is used. */
  readonly keyFile: string;
  readonly issuer: string;
  readonly audience: string;
  /** Seconds of clock skew allowed for exp and nbf. */
  readonly clockSkew: number;
}

/** Longer tokens are refused unread (a frame or an upgrade may carry up to server.max_payload / 16 KiB). */
const MAX_TOKEN = 8192;

export class JoinVerifier {
  private readonly key: KeyObject | JWTVerifyGetKey;
  private readonly options: JWTVerifyOptions;

  /** Throws (with a message naming what is wrong) when the secret or key file is unusable. */
  constructor(auth: JoinAuth) {
    let algorithms: string[];
    if (auth.secret !== '') {
      this.key = createSecretKey(Buffer.from(auth.secret, 'utf8'));
      algorithms = ['HS256'];
    } else if (auth.keyFile.trimStart().startsWith('{')) {
      const jwks = JSON.parse(auth.keyFile) as { keys?: unknown };
      if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) throw new Error('the JWKS has no "keys"');
      this.key = createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]);
      algorithms = ['RS256', 'ES256'];
    } else {
      const key = createPublicKey(auth.keyFile);
      const type = key.asymmetricKeyType;
      if (type === 'rsa') algorithms = ['RS256'];
      else if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') algorithms = ['ES256'];
      else throw new Error(`a ${type ?? 'unknown'} key; use an RSA (RS256) or P-256 (ES256) public key`);
      this.key = key;
    }
    this.options = {
      algorithms,
      clockTolerance: auth.clockSkew,
      requiredClaims: ['sub', 'exp'],
      ...(auth.issuer !== '' ? { issuer: auth.issuer } : {}),
      ...(auth.audience !== '' ? { audience: auth.audience } : {}),
    };
  }

  /** null when `token` allows joining `card` with `app` ('' = none), else the code to close with. */
  async verify(token: string, card: string, app: string): Promise<WsErrorCode | null> {
    if (token.length > MAX_TOKEN) return 'PUSH_ERR_WS_TOKEN_INVALID';
    let claims: { sub?: unknown; app_id?: unknown };
    try {
      // jose's overloads split on the key's type; both kinds are handled the same.
      claims = (await jwtVerify(token, this.key as KeyObject, this.options)).payload;
    } catch (err) {
      if (err instanceof errors.JWTExpired) return 'PUSH_ERR_WS_TOKEN_EXPIRED';
      if (err instanceof errors.JOSEError) return 'PUSH_ERR_WS_TOKEN_INVALID';
      throw err;
    }
    if (claims.app_id !== undefined && typeof claims.app_id !== 'string') return 'PUSH_ERR_WS_TOKEN_INVALID';
    if (claims.sub !== card || (claims.app_id !== undefined && claims.app_id !== app)) return 'PUSH_ERR_WS_TOKEN_MISMATCH';
    return null;
  }
}
