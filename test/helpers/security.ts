// What the security tests need besides the server: join tokens minted the way
// README tells a backend to (jose), a WebSocket upgrade that is refused
// (status and body), and a self-signed certificate made with openssl.

import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, type KeyLike } from 'jose';
import WebSocket from 'ws';

export const SECRET = 'test-secret-that-is-at-least-32-characters';

export interface TokenClaims {
  sub?: string;
  app_id?: string;
  /** Seconds from now; negative: already expired. */
  expiresIn?: number;
}

export async function token(claims: TokenClaims, key: KeyLike | Uint8Array = new TextEncoder().encode(SECRET), alg = 'HS256'): Promise<string> {
  const jwt = new SignJWT(claims.app_id !== undefined ? { app_id: claims.app_id } : {}).setProtectedHeader({ alg });
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  return jwt.setExpirationTime(Math.floor(Date.now() / 1000) + (claims.expiresIn ?? 60)).sign(key);
}

/** The answer to an upgrade the server refuses; throws if it is accepted. */
export function refusedUpgrade(url: string, opts: WebSocket.ClientOptions = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts);
    ws.once('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', () => undefined);
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text === '' ? null : JSON.parse(text) }));
    });
  });
}

/** A self-signed certificate for 127.0.0.1 and its key, in a new temporary folder. */
export function selfSigned(): { dir: string; cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pusher-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { dir, cert, key };
}
