// `pusher token`: mints a join token the way a backend would (README, "Signed
// joins"), for trying signed joins and for scripts. HS256 with the server's
// secret (--secret, $PUSHER_JOIN_SECRET, or auth.join_secret from the same
// --config/--set the server runs with), or RS256/ES256 with a private key
// (--private-key FILE: the server holds the public one in auth.join_key_file).
// Issuer and audience come from the configuration, so the token passes the
// server's checks.

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { SignJWT } from 'jose';
import { loadConfig } from './config/load';

export const TOKEN_USAGE = `  token --card CARD [--app APP] [--ttl 1h] [--secret S | --private-key FILE] [--config FILE] [--set k=v ...]
        print a join token for CARD (JWT: sub = CARD, app_id = APP, exp = now + ttl)`;

export interface TokenOptions {
  readonly card: string;
  readonly app: string | undefined;
  /** 90, 90s, 15m, 1h, 7d. */
  readonly ttl: string;
  readonly secret: string | undefined;
  readonly privateKey: string | undefined;
  readonly config: string | undefined;
  readonly sets: readonly string[];
}

const TTL = /^(\d+)(s|m|h|d)?$/;

/** The token, or throws an Error whose message is a usage problem. */
export async function mintToken(o: TokenOptions): Promise<string> {
  const ttl = TTL.exec(o.ttl);
  if (ttl === null || Number(ttl[1]) === 0) throw new Error(`--ttl must be a duration like 90s, 15m, 1h or 7d, got "${o.ttl}"`);
  if (o.card === '') throw new Error('token needs --card CARD');
  const config = loadConfig({ configFile: o.config ?? null, sets: [...o.sets] }, availableParallelism());
  const { join_secret: configSecret, join_issuer: issuer, join_audience: audience } = config.auth;
  let key: Uint8Array | KeyObject;
  let alg: string;
  if (o.privateKey !== undefined) {
    try {
      key = createPrivateKey(readFileSync(o.privateKey));
    } catch (err) {
      throw new Error(`--private-key ${o.privateKey}: not a PEM private key (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    if (key.asymmetricKeyType === 'rsa') alg = 'RS256';
    else if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'ES256';
    else throw new Error(`--private-key ${o.privateKey}: an RSA or EC P-256 private key is needed (the server checks RS256 and ES256)`);
  } else {
    const secret = o.secret ?? process.env['PUSHER_JOIN_SECRET'] ?? configSecret;
    if (secret === '') throw new Error('no secret: give --secret, $PUSHER_JOIN_SECRET, auth.join_secret in the configuration, or --private-key');
    key = new TextEncoder().encode(secret);
    alg = 'HS256';
  }
  let jwt = new SignJWT(o.app !== undefined ? { app_id: o.app } : {})
    .setProtectedHeader({ alg })
    .setSubject(o.card)
    .setIssuedAt()
    .setExpirationTime(`${ttl[1]}${ttl[2] ?? 's'}`);
  if (issuer !== '') jwt = jwt.setIssuer(issuer);
  if (audience !== '') jwt = jwt.setAudience(audience);
  return jwt.sign(key);
}
