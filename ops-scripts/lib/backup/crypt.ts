// Encryption at rest with age (https://age-encryption.org, Debian's `age`):
// files are encrypted to public-key recipients where they are written (the
// database host needs only the recipients), and decrypted only where a restore
// runs, with the identity (private key) file. A stored name ends in .age when
// it is encrypted. Key rotation: a new recipient list applies to files written
// from then on; files already written stay readable with the identity they
// were written for (keep the old identity until the last backup and WAL made
// for it has aged out by retention; an identity file may hold several keys).
import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { syncFile } from '../files.ts';
import { badInput } from '../errors.ts';
import { run, type OsUser } from '../run.ts';

export const AGE_SUFFIX = '.age';

export const isEncrypted = (name: string) => name.endsWith(AGE_SUFFIX);

/** Encrypts `path` to `<path>.age` for `recipients` (synced to disk), then removes `path`. */
export async function encryptFile(path: string, recipients: string[], as?: OsUser): Promise<string> {
  const out = `${path}${AGE_SUFFIX}`;
  await run('age', [...recipients.flatMap((r) => ['-r', r]), '-o', out, '--', path], { as, dieWithParent: true });
  syncFile(out);
  rmSync(path);
  return out;
}

/**
 * The identity file a decryption needs, checked before anything is touched: configured, readable,
 * readable by its owner only, and owned by the OS user that runs PostgreSQL (`as`), whose
 * restore_command decrypts archived WAL. Bad input (exit 2) otherwise, naming what `needs` it.
 */
export function requireIdentity(identityFile: string | undefined, needs: string, as?: OsUser): string {
  const hint =
    'set EDUPULSE_BACKUP_AGE_IDENTITY to the age identity (private key) file the backups were encrypted for; it need not live on the database host';
  if (!identityFile) throw badInput(`${needs} is encrypted and no identity file is set`, hint);
  try {
    accessSync(identityFile, constants.R_OK);
  } catch {
    throw badInput(`the age identity file ${identityFile} cannot be read`, hint);
  }
  if (statSync(identityFile).mode & 0o077)
    throw badInput(
      `the age identity file ${identityFile} is readable by others`,
      `chmod 600 ${identityFile}: it is the key to every backup`,
    );
  if (as && statSync(identityFile).uid !== as.uid)
    throw badInput(
      `the age identity file ${identityFile} is not owned by ${as.name}, the OS user whose restore_command decrypts the archived WAL`,
      `chown ${as.name} ${identityFile}`,
    );
  return identityFile;
}

/** Decrypts `path` (an .age file) to `out` with the identity file. */
export async function decryptFile(path: string, out: string, identityFile: string, as?: OsUser): Promise<void> {
  await run('age', ['-d', '-i', identityFile, '-o', out, '--', path], { as, dieWithParent: true });
}
