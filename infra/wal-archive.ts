// The archive_command both appliers install: one POSIX shell script (the
// local stack writes it beside the data directory, the container gets it as an
// upload) that stores each WAL segment zstd-compressed in the repository's wal/.
//
// Why a script and not an archive_library: basic_archive (PostgreSQL's only
// shipped module) cannot compress, and a C module of our own is not worth its
// build; measured on this machine (BENCHMARKS.md, "WAL archive"), one run of the
// script takes ~50 ms per 16 MB segment at zstd level 1 (~300 MB/s), several
// times the server's peak WAL rate here (~40-100 MB/s), so the archiver keeps up.
//
// The contract PostgreSQL needs from an archive_command, kept:
//   - exit 0 only once the file is durable: written under a temp name, fsynced,
//     renamed into place, the directory fsynced;
//   - a file already archived with the same content is success (the server
//     retries a segment whose success it did not record, e.g. after a crash);
//   - one already there with different content is never overwritten: the script
//     says so on stderr (the server's log) and exits 1, so the server keeps the
//     segment in pg_wal, retries, and the archiver alert fires;
//   - any other failure (disk full, zstd missing) exits non-zero: the same.
// With age recipients set (encryption at rest, ops-scripts/lib/backup/crypt.ts)
// segments are stored as <name>.zst.age, with the segment's SHA-256 in
// <name>.zst.age.sha256 for the same-content check (the host cannot decrypt).
// Segments and .partial files are stored as <name>.zst; timeline history and
// backup history files stay as they are (tiny, read as text). An archive written
// before compression (plain <segment> files) is read alongside (see
// ops-scripts/lib/backup/layout.ts), and a plain copy counts as archived.

/** The archive_command's script. Arguments: %p %f <archive directory> <zstd level> [<age recipients file>]. */
export const ARCHIVE_WAL_SCRIPT = `#!/bin/sh
# Written by edupulse-db (infra/wal-archive.ts):
# archive_command = '<this> %p %f <dir> <zstd level> [<age recipients file>]'.
set -u
src=$1 name=$2 dir=$3 level=$4 recipients=\${5:-}
case $name in
  *.history | *.backup) dest=$dir/$name ;;
  *) if [ -n "$recipients" ]; then dest=$dir/$name.zst.age; else dest=$dir/$name.zst; fi ;;
esac
sha() { sha256sum <"$1" | cut -d' ' -f1; }
same() {
  case $1 in
    # Encrypted: the host cannot decrypt (it has no identity); the segment's SHA-256 beside it decides.
    *.age) [ -f "$1.sha256" ] && [ "$(cat -- "$1.sha256")" = "$(sha "$src")" ] ;;
    *.zst) zstd -q -d -c -- "$1" | cmp -s -- - "$src" ;;
    *) cmp -s -- "$1" "$src" ;;
  esac
}
for existing in "$dir/$name.zst.age" "$dir/$name.zst" "$dir/$name"; do
  if [ -e "$existing" ]; then
    same "$existing" && exit 0
    echo "archive-wal: $existing is already archived with different content; not overwritten" >&2
    exit 1
  fi
done
tmp=$dir/.$name.$$.tmp
trap 'rm -f -- "$tmp" "$tmp.zst" "$tmp.sha256"' EXIT
case $dest in
  *.age)
    zstd -q -"$level" -c -- "$src" >"$tmp.zst" && age -R "$recipients" -o "$tmp" -- "$tmp.zst" || exit 1
    sha "$src" >"$tmp.sha256" && sync -- "$tmp.sha256" && mv -- "$tmp.sha256" "$dest.sha256" || exit 1 ;;
  *.zst) zstd -q -"$level" -c -- "$src" >"$tmp" || exit 1 ;;
  *) cp -- "$src" "$tmp" || exit 1 ;;
esac
sync -- "$tmp" && mv -- "$tmp" "$dest" && sync -- "$dir"
`;

/** The archive_command line that runs the script at `script` into `dir`, encrypting to `recipientsFile` when given. */
export const archiveCommand = (script: string, dir: string, level: number, recipientsFile?: string) =>
  `'${script}' %p %f '${dir}' ${level}${recipientsFile ? ` '${recipientsFile}'` : ''}`;

/** The age recipients file the script reads: one public key per line. */
export const recipientsFileContent = (recipients: string[]) =>
  `# Written by edupulse-db: the age recipients archived WAL is encrypted to.\n${recipients.join('\n')}\n`;
