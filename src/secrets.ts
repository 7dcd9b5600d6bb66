// The files security settings name, read and checked once at start-up (main
// thread): TLS certificate and key, the join key, the API keys. A file that
// is missing, unreadable or unusable stops start-up with one line naming the
// key (PUSH_ERR_CONFIG, exit 2), rather than a shard or a listener failing later.

import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { Config } from './config/schema';
import { StartupError } from '../shared/errors';
import { JoinVerifier, type JoinAuth } from '../shared/join-token';
import { ApiKeys } from './api/api-keys';

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface Secrets {
  /** null: plain ws://, http:// and gRPC without TLS. */
  readonly tls: TlsFiles | null;
  /** null: joins are not signed. */
  readonly joinAuth: JoinAuth | null;
  readonly apiKeys: ApiKeys;
}

function problem(key: string, file: string, err: unknown): StartupError {
  const e = err as NodeJS.ErrnoException;
  return new StartupError('PUSH_ERR_CONFIG', `${key} ${file}: ${e.code ?? e.message}`);
}

function read(key: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw problem(key, file, err);
  }
}

export function loadSecrets(config: Config): Secrets {
  const { auth, tls } = config;
  let tlsFiles: TlsFiles | null = null;
  if (tls.cert !== '') {
    const cert = read('tls.cert', tls.cert);
    const key = read('tls.key', tls.key);
    try {
      createSecureContext({ cert, key });
    } catch (err) {
      throw new StartupError('PUSH_ERR_CONFIG', `tls.cert ${tls.cert} and tls.key ${tls.key} are not a usable PEM certificate and its key: ${(err as Error).message}`);
    }
    tlsFiles = { certFile: tls.cert, keyFile: tls.key, cert, key };
  }

  let joinAuth: JoinAuth | null = null;
  if (auth.join_secret !== '' || auth.join_key_file !== '') {
    const keyFile = auth.join_key_file !== '' ? read('auth.join_key_file', auth.join_key_file).toString('utf8') : '';
    joinAuth = { secret: auth.join_secret, keyFile, issuer: auth.join_issuer, audience: auth.join_audience, clockSkew: auth.join_clock_skew };
    try {
      new JoinVerifier(joinAuth);
    } catch (err) {
      throw new StartupError('PUSH_ERR_CONFIG', `auth.join_key_file ${auth.join_key_file}: ${(err as Error).message}`);
    }
  }

  let apiKeys: ApiKeys;
  try {
    apiKeys = new ApiKeys(auth.api_keys, auth.api_keys_file);
  } catch (err) {
    throw problem('auth.api_keys_file', auth.api_keys_file, err);
  }
  return { tls: tlsFiles, joinAuth, apiKeys };
}
