// Sealing: a secret's value is encrypted here, in the browser, to a public
// key of the secret store (HPKE, RFC 9180, base mode, single shot), so the
// gateway and everything between only ever see ciphertext. The HPKE code is
// the maintained @hpke family's, over WebCrypto; nothing here is
// hand-written cryptography.

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { XWing } from "@hpke/hybridkem-x-wing";

import type { SealedValue, SealingKey } from "./types";

/** HPKE algorithm ids (RFC 9180 and the IANA HPKE registry). */
export const KEM_X25519 = 0x0020; // DHKEM(X25519, HKDF-SHA256)
export const KEM_XWING = 0x647a; // ML-KEM-768 + X25519 (X-Wing); Go's hpke.MLKEM768X25519
export const KDF_HKDF_SHA256 = 0x0001;
export const AEAD_AES_256_GCM = 0x0002;

/**
 * KEM_PREFERENCE orders the KEMs the browser can seal with: the post-quantum
 * hybrid first, then X25519.
 */
export const KEM_PREFERENCE = [KEM_XWING, KEM_X25519];

/** sealInfo is the HPKE info binding a value to its secret's owner and name. */
export function sealInfo(owner: string, secretId: string): Uint8Array {
  return new TextEncoder().encode("oz-secret-v1|" + owner + "/secrets/" + secretId);
}

/**
 * chooseKey picks the current key of the most preferred KEM the browser
 * supports, with HKDF-SHA256 and AES-256-GCM; undefined when there is none.
 */
export function chooseKey(keys: SealingKey[]): SealingKey | undefined {
  for (const kem of KEM_PREFERENCE) {
    const k = keys.find(
      (k) => k.current && k.kemId === kem && k.kdfId === KDF_HKDF_SHA256 && k.aeadId === AEAD_AES_256_GCM,
    );
    if (k) return k;
  }
  return undefined;
}

function suiteFor(kemId: number): CipherSuite {
  let kem;
  switch (kemId) {
    case KEM_X25519:
      kem = new DhkemX25519HkdfSha256();
      break;
    case KEM_XWING:
      kem = new XWing();
      break;
    default:
      throw new Error(`unsupported HPKE KEM 0x${kemId.toString(16)}`);
  }
  return new CipherSuite({ kem, kdf: new HkdfSha256(), aead: new Aes256Gcm() });
}

/**
 * seal encrypts plaintext to key with the given info and no additional
 * data, and returns the key id and enc || ct, base64-encoded.
 */
export async function seal(key: SealingKey, info: Uint8Array, plaintext: Uint8Array): Promise<SealedValue> {
  if (key.kdfId !== KDF_HKDF_SHA256 || key.aeadId !== AEAD_AES_256_GCM) {
    throw new Error(`unsupported HPKE suite (kdf ${key.kdfId}, aead ${key.aeadId})`);
  }
  const suite = suiteFor(key.kemId);
  const recipientPublicKey = await suite.kem.deserializePublicKey(fromBase64(key.publicKey));
  const { enc, ct } = await suite.seal({ recipientPublicKey, info }, plaintext);
  const out = new Uint8Array(enc.byteLength + ct.byteLength);
  out.set(new Uint8Array(enc), 0);
  out.set(new Uint8Array(ct), enc.byteLength);
  return { keyId: key.keyId, ciphertext: toBase64(out) };
}

export function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
