// SPDX-License-Identifier: MIT
/*
 * `xl tls-setup`: a cluster CA and host certificates for the migration
 * listener. EC P-256 keys, SHA-256 signatures, X.509 v3:
 *   CA:   basicConstraints critical CA:TRUE, keyUsage critical
 *         keyCertSign+cRLSign, subject/authority key identifiers;
 *   host: basicConstraints critical CA:FALSE, keyUsage critical
 *         digitalSignature, extendedKeyUsage serverAuth+clientAuth,
 *         subjectAltName IP:addr or DNS:name, CN = the host name.
 * Keys are written 0600 (via a temporary file and rename), the directory
 * is 0700.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "stream/net.h"

#define CA_NAME	    "Ferry migration CA"
#define CA_MIN_DAYS 3650
#define BACKDATE_S  300 /* clocks of two hosts differ a little */
#define PATH_LEN    PATH_MAX

/* Appends OpenSSL's most recent reason (and clears the queue). */
static int ossl_fail(char *err, size_t errlen, int rc, const char *fmt, ...) PRINTF_FMT(4, 5);
static int ossl_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	unsigned long e, last = 0;
	char why[256] = "unknown OpenSSL error";
	char what[PATH_LEN + 64];
	va_list ap;

	while ((e = ERR_get_error()))
		last = e;
	if (last)
		ERR_error_string_n(last, why, sizeof(why));
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "%s: %s", what, why);
	return rc;
}

static int mkdir_0700(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "creating %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: not a directory", dir);
		return -ENOTDIR;
	}
	if ((st.st_mode & 077) && chmod(dir, 0700) < 0) {
		snprintf(err, errlen, "chmod 0700 %s: %s", dir, strerror(errno));
		return -errno;
	}
	return 0;
}

static bool is_ip(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

static int check_name(const char *name, char *err, size_t errlen)
{
	if (!name || !*name || strlen(name) > 253 || strchr(name, '/') || !strcmp(name, "ca") ||
	    name[0] == '.') {
		snprintf(err, errlen, "bad host name \"%s\"", name ? name : "");
		return -EINVAL;
	}
	for (const char *p = name; *p; p++) {
		if (*p <= ' ' || *p == ',' || *p > '~') {
			snprintf(err, errlen, "bad host name \"%s\"", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Writes a PEM object to path via path.tmp + rename, with mode. */
static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key, char *err,
		     size_t errlen)
{
	char tmp[PATH_LEN];
	FILE *f;
	int fd, ok;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		return -errno;
	}
	f = fdopen(fd, "w");
	if (!f) {
		snprintf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	ok = cert ? PEM_write_X509(f, cert)
		  : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		unlink(tmp);
		return ossl_fail(err, errlen, -EIO, "writing %s", tmp);
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "renaming %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -errno;
	}
	return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int random_serial(X509 *cert)
{
	unsigned char b[16];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return 0;
	b[0] &= 0x7f; /* positive */
	b[0] |= 0x01; /* and not shorter than 16 bytes */
	bn = BN_bin2bn(b, sizeof(b), NULL);
	if (!bn)
		return 0;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
	BN_free(bn);
	return ok;
}

/*
 * A certificate for key with subject CN=cn, signed by issuer_key
 * (issuer NULL: self-signed), valid [now + nb, now + na].
 */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long nb,
		       long na, bool ca)
{
	X509 *c = X509_new();
	X509_NAME *subj;
	char san[300];

	if (!c)
		return NULL;
	subj = X509_get_subject_name(c);
	if (!X509_set_version(c, X509_VERSION_3) || !random_serial(c) ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), nb) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), na) || !X509_set_pubkey(c, key) ||
	    !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : subj))
		goto fail;
	if (ca) {
		if (!add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE") ||
		    !add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
		    !add_ext(c, c, NID_subject_key_identifier, "hash") ||
		    !add_ext(c, c, NID_authority_key_identifier, "keyid:always"))
			goto fail;
	} else {
		snprintf(san, sizeof(san), "%s:%s", is_ip(cn) ? "IP" : "DNS", cn);
		if (!add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE") ||
		    !add_ext(c, issuer, NID_key_usage, "critical,digitalSignature") ||
		    !add_ext(c, issuer, NID_ext_key_usage, "serverAuth,clientAuth") ||
		    !add_ext(c, issuer, NID_subject_alt_name, san) ||
		    !add_ext(c, issuer, NID_subject_key_identifier, "hash") ||
		    !add_ext(c, issuer, NID_authority_key_identifier, "keyid:always"))
			goto fail;
	}
	if (!X509_sign(c, issuer_key, EVP_sha256()))
		goto fail;
	return c;
fail:
	X509_free(c);
	return NULL;
}

static EVP_PKEY *new_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* Loads DIR/ca.pem and DIR/ca.key. */
static int load_ca(const char *dir, X509 **cert, EVP_PKEY **key, char *err, size_t errlen)
{
	char path[PATH_LEN];
	FILE *f;

	*cert = NULL;
	*key = NULL;
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	*cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*cert)
		return ossl_fail(err, errlen, -EINVAL, "reading %s", path);
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	f = fopen(path, "re");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		X509_free(*cert);
		*cert = NULL;
		return -errno;
	}
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!*key || X509_check_private_key(*cert, *key) != 1) {
		int rc = ossl_fail(err, errlen, -EINVAL, "%s does not match ca.pem", path);

		X509_free(*cert);
		EVP_PKEY_free(*key);
		*cert = NULL;
		*key = NULL;
		return rc;
	}
	return 0;
}

/* Creates DIR/ca.pem and ca.key (valid days, at least CA_MIN_DAYS). */
static int create_ca(const char *dir, unsigned days, X509 **cert, EVP_PKEY **key, char *err,
		     size_t errlen)
{
	char path[PATH_LEN];
	long secs = (long)(days > CA_MIN_DAYS ? days : CA_MIN_DAYS) * 86400L;
	int rc;

	*key = new_key();
	if (!*key)
		return ossl_fail(err, errlen, -ENOMEM, "generating the CA key");
	*cert = make_cert(*key, CA_NAME, NULL, *key, -BACKDATE_S, secs, true);
	if (!*cert) {
		rc = ossl_fail(err, errlen, -ENOMEM, "making the CA certificate");
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/ca.key", dir);
	rc = write_pem(path, 0600, NULL, *key, err, errlen);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	rc = write_pem(path, 0644, *cert, NULL, err, errlen);
	if (rc)
		goto fail;
	log_info("tls-setup: created CA %s/ca.pem", dir);
	return 0;
fail:
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return rc;
}

static int issue_host(const char *dir, const char *name, X509 *ca, EVP_PKEY *ca_key, long nb,
		      long na, char *err, size_t errlen)
{
	char path[PATH_LEN];
	EVP_PKEY *key;
	X509 *cert = NULL;
	int rc;

	rc = check_name(name, err, errlen);
	if (rc)
		return rc;
	if (strlen(dir) + strlen(name) + 16 > sizeof(path)) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -ENAMETOOLONG;
	}
	key = new_key();
	if (!key)
		return ossl_fail(err, errlen, -ENOMEM, "generating the key of %s", name);
	cert = make_cert(key, name, ca, ca_key, nb, na, false);
	if (!cert) {
		rc = ossl_fail(err, errlen, -ENOMEM, "making the certificate of %s", name);
		goto out;
	}
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	rc = write_pem(path, 0600, NULL, key, err, errlen);
	if (rc)
		goto out;
	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	rc = write_pem(path, 0644, cert, NULL, err, errlen);
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

int strm_tls_setup(const char *dir, const char *const *hosts, unsigned nhosts, unsigned days,
		   char *err, size_t errlen)
{
	char capem[PATH_LEN], cakey[PATH_LEN];
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	bool have_pem, have_key;
	int rc;

	if (days == 0 || days > 36500) {
		snprintf(err, errlen, "tls-setup: validity of %u days is out of range", days);
		rc = -EINVAL;
		goto out;
	}
	rc = mkdir_0700(dir, err, errlen);
	if (rc)
		goto out;
	snprintf(capem, sizeof(capem), "%s/ca.pem", dir);
	snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
	have_pem = access(capem, F_OK) == 0;
	have_key = access(cakey, F_OK) == 0;
	if (have_pem != have_key) {
		snprintf(err, errlen, "%s exists without %s; remove it to create a new CA",
			 have_pem ? capem : cakey, have_pem ? cakey : capem);
		rc = -EEXIST;
		goto out;
	}
	if (have_pem) {
		rc = load_ca(dir, &ca, &ca_key, err, errlen);
		if (rc)
			goto out;
		if (X509_cmp_current_time(X509_get0_notAfter(ca)) <= 0) {
			snprintf(err, errlen,
				 "%s has expired; remove ca.pem and ca.key to create a new CA",
				 capem);
			rc = -EKEYEXPIRED;
			goto out;
		}
		log_info("tls-setup: reusing CA %s", capem);
	} else {
		rc = create_ca(dir, days, &ca, &ca_key, err, errlen);
		if (rc)
			goto out;
	}
	for (unsigned i = 0; i < nhosts; i++) {
		rc = issue_host(dir, hosts[i], ca, ca_key, -BACKDATE_S, (long)days * 86400L, err,
				errlen);
		if (rc)
			goto out;
		log_info("tls-setup: issued %s/%s.pem (%u days)", dir, hosts[i], days);
	}
out:
	if (rc)
		log_err("tls-setup: %s", err);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

int strm_tls_make_host_cert(const char *dir, const char *name, const char *ca_dir,
			    long not_before_s, long not_after_s, char *err, size_t errlen)
{
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	int rc;

	rc = mkdir_0700(dir, err, errlen);
	if (!rc)
		rc = load_ca(ca_dir, &ca, &ca_key, err, errlen);
	if (!rc)
		rc = issue_host(dir, name, ca, ca_key, not_before_s, not_after_s, err, errlen);
	if (rc)
		log_err("tls: %s", err);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}
