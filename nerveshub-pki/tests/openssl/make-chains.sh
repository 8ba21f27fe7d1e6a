#!/bin/sh
# Makes the OpenSSL-built test chains for nerveshub-pki's tests into directory $1.
# Run at test time (nothing is committed that could expire). Needs the `openssl` CLI (1.1.1 or 3.x).
#
# Output (PEM unless noted):
#   root.pem            EC P-256 root CA (CA:TRUE, keyCertSign)
#   other-root.pem      a root that is never registered
#   root-pathlen0.pem   root with pathlen:0
#   root-nokcs.pem      root whose keyUsage lacks keyCertSign
#   root-expired.pem    root that expired in 2021
#   inter.pem           intermediate under root.pem (pathlen:0)
#   inter-pl0.pem       intermediate under root-pathlen0.pem
#   inter-nokcs.pem     intermediate under root.pem whose keyUsage lacks keyCertSign
#   ed-root.pem         Ed25519 root CA
#   rsa-root.pem        RSA 2048 root CA
#   dev-*.pem           device certificates (CN = file stem), keys in dev-*.key
#   dev-badsig.der      dev-valid with one signature byte flipped (DER)
#   verify-*.pem        CA registration verification certificates
set -eu
out=$1
mkdir -p "$out"
cd "$out"

cat > ext.cnf <<'CNF'
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ca_pl0]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[ca_nokcs]
basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[verify_san]
basicConstraints = critical,CA:FALSE
subjectAltName = URI:urn:nerveshub:verify:test-token-123
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

# `openssl ca` is the portable way to set explicit start and end dates.
mkdir -p db
: > db/index.txt
echo 1000 > db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = local
[local]
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
email_in_dn = no
[any]
commonName = supplied
organizationName = optional
CNF

eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SIGNER_STEM EXT START END [KEYTYPE]
# SIGNER_STEM "self" makes a self-signed certificate.
sign() {
  name=$1 signer=$2 ext=$3 start=$4 end=$5 keytype=${6:-ec}
  case $keytype in
    ec) eckey "$name.key" ;;
    rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$name.key" 2>/dev/null ;;
    ed25519) openssl genpkey -algorithm ED25519 -out "$name.key" ;;
  esac
  openssl req -new -key "$name.key" -subj "/O=nerveshub-rs tests/CN=$name" -out "$name.csr" 2>/dev/null
  if [ "$signer" = self ]; then
    set -- -selfsign -keyfile "$name.key"
  else
    set -- -cert "$signer.pem" -keyfile "$signer.key"
  fi
  md=-md
  mdv=sha256
  if [ "$keytype" = ed25519 ] || [ "$signer" = ed-root ]; then mdv=default; fi
  openssl ca -batch -config ca.cnf -notext "$@" $md $mdv -extfile ext.cnf -extensions "$ext" \
    -startdate "$start" -enddate "$end" -in "$name.csr" -out "$name.pem" 2>/dev/null
}

PAST=20200101000000Z
LONG=20990101000000Z

sign root self ca $PAST $LONG
sign other-root self ca $PAST $LONG
sign root-pathlen0 self ca_pl0 $PAST $LONG
sign root-nokcs self ca_nokcs $PAST $LONG
sign root-expired self ca 20200101000000Z 20210101000000Z
sign ed-root self ca $PAST $LONG ed25519
sign rsa-root self ca $PAST $LONG rsa
sign inter root ca_pl0 $PAST $LONG
sign inter-pl0 root-pathlen0 ca $PAST $LONG
sign inter-nokcs root ca_nokcs $PAST $LONG

sign dev-valid root client $PAST $LONG
sign dev-expired root client 20200101000000Z 20210101000000Z
sign dev-notyet root client 20980101000000Z $LONG
sign dev-unknown other-root client $PAST $LONG
sign dev-serverauth root server $PAST $LONG
sign dev-via-inter inter client $PAST $LONG
sign dev-via-pl0 inter-pl0 client $PAST $LONG
sign dev-via-nokcs inter-nokcs client $PAST $LONG
sign dev-under-nokcs root-nokcs client $PAST $LONG
sign dev-under-expired root-expired client 20200601000000Z $LONG
sign dev-rsa root client $PAST $LONG rsa
sign dev-ed25519 ed-root client $PAST $LONG ed25519
sign dev-under-rsa rsa-root client $PAST $LONG

# Registration proofs: token in a SAN URI (API flow) and as the CN (UI flow).
sign verify-san root verify_san $PAST $LONG
sign verify-code-0123abcd root client $PAST $LONG
sign verify-other other-root verify_san $PAST $LONG
sign verify-rsa rsa-root verify_san $PAST $LONG

# Flip a byte near the end of the DER (inside the signature value).
openssl x509 -in dev-valid.pem -outform DER -out dev-valid.der
python3 - <<'PY' 2>/dev/null || perl -e 'local $/; open F,"<","dev-valid.der"; binmode F; $d=<F>; substr($d,-3,1)=chr(ord(substr($d,-3,1))^1); open G,">","dev-badsig.der"; binmode G; print G $d;'
d = bytearray(open("dev-valid.der", "rb").read())
d[-3] ^= 1
open("dev-badsig.der", "wb").write(bytes(d))
PY
openssl x509 -inform DER -in dev-badsig.der -out dev-badsig.pem
echo done
