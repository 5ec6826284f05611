#!/bin/sh
# oz-dev-pki.sh OUT — a development CA, one certificate per service, and the
# secretstore's key-encryption keyring, laid out for deploy/ (compose mounts
# OUT/<service> and OUT/keyring; Kubernetes Secrets are made from the same
# files). It mirrors what `make run` does in Go (services/internal/pki):
# ECDSA P-256 keys (PKCS#8, mode 0600), common name = the service's identity
# (resolver, secretstore, audit, gateway), usable as server and client
# certificate. Files that exist are kept: running it again changes nothing.
#
#   OUT/ca/ca.crt, OUT/ca/ca.key            the CA (keep ca.key off the services)
#   OUT/<service>/tls.crt, tls.key, ca.crt  one per service
#   OUT/keyring/keyring.json                {"primary":"k1","keys":{"k1":"<base64 of 32 bytes>"}}
#
# Environment:
#   OZ_PKI_NAMESPACE  Kubernetes namespace for the <svc>.<ns>.svc names (default oz)
#   OZ_PKI_HOSTS      extra names/IPs for the gateway's certificate, which is
#                     also its public one (comma-separated), e.g. oz.example.com
#   OZ_PKI_DAYS       validity of the service certificates (default 730)
#
# Needs: sh, openssl 3. Uses `ozsecretstored keyring generate` for the keyring
# when it is on PATH, else openssl's random generator.
set -eu

out=${1:?usage: oz-dev-pki.sh OUTPUT_DIR}
ns=${OZ_PKI_NAMESPACE:-oz}
days=${OZ_PKI_DAYS:-730}
umask 077

ca=$out/ca
mkdir -p "$ca"
if [ ! -f "$ca/ca.crt" ]; then
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$ca/ca.key"
	openssl req -x509 -new -key "$ca/ca.key" -sha256 -days 3650 \
		-subj "/O=oz secrets (development)/CN=oz dev CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$ca/ca.crt"
	chmod 0644 "$ca/ca.crt"
	echo "oz-dev-pki: created CA $ca/ca.crt"
fi

for svc in resolver secretstore audit gateway; do
	dir=$out/$svc
	mkdir -p "$dir"
	if [ -f "$dir/tls.crt" ] && [ -f "$dir/tls.key" ]; then
		continue
	fi
	san="DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:::1"
	if [ "$svc" = gateway ] && [ -n "${OZ_PKI_HOSTS:-}" ]; then
		for h in $(echo "$OZ_PKI_HOSTS" | tr ',' ' '); do
			case $h in
			*[!0-9.:a-fA-F]*) san="$san,DNS:$h" ;;
			*) san="$san,IP:$h" ;;
			esac
		done
	fi
	ext=$dir/ext.cnf
	cat >"$ext" <<CNF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
CNF
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/tls.key"
	openssl req -new -key "$dir/tls.key" -subj "/O=oz secrets/CN=$svc" -out "$dir/tls.csr"
	openssl x509 -req -in "$dir/tls.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
		-extfile "$ext" -out "$dir/tls.crt" 2>/dev/null
	rm -f "$dir/tls.csr" "$ext"
	cp "$ca/ca.crt" "$dir/ca.crt"
	chmod 0644 "$dir/tls.crt" "$dir/ca.crt"
	echo "oz-dev-pki: issued $svc ($dir/tls.crt)"
done

kr=$out/keyring
mkdir -p "$kr"
if [ ! -f "$kr/keyring.json" ]; then
	if command -v ozsecretstored >/dev/null 2>&1; then
		ozsecretstored keyring generate --kek-file "$kr/keyring.json"
	else
		printf '{"primary":"k1","keys":{"k1":"%s"}}\n' "$(openssl rand -base64 32)" >"$kr/keyring.json"
		chmod 0600 "$kr/keyring.json"
		echo "oz-dev-pki: wrote a new keyring to $kr/keyring.json"
	fi
fi
# Directories readable by their owner only; the services run as that owner.
chmod 0700 "$out" "$ca" "$kr"
for svc in resolver secretstore audit gateway; do chmod 0700 "$out/$svc"; done
