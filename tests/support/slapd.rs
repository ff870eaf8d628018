//! A throwaway OpenLDAP server for tests.
//!
//! Each `Slapd` is a real `slapd` process serving `dc=example,dc=com` from its own temporary
//! directory, on free loopback ports, with plain LDAP (StartTLS capable) and LDAPS. Data is
//! bulk-loaded with `slapadd` before the server starts (fast even for 100k entries) and can
//! be changed afterwards with `add`, `modify` and `delete` (the ldap-utils, bound as admin).
//! Dropping the value kills the server and removes its directory.
//!
//! TLS uses a test CA generated once per test process with the openssl CLI; the server
//! certificate names 127.0.0.1, ::1 and localhost (`start_on_ipv6` serves on ::1, and
//! `start_without_subject_alt_name` presents one with no subjectAltName at all). A second CA, which signed nothing the server
//! holds, is there to test refused certificates.
//!
//! Besides the core, cosine, inetorgperson and nis schemas, the server knows an auxiliary
//! class `rosterTestAD` carrying a binary `objectGUID` and the integers `userAccountControl`
//! and `accountExpires`, to stand in for Active Directory.
//! slapd gives every entry an `entryUUID`, whether loaded by slapadd or added later.

#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const BASE_DN: &str = "dc=example,dc=com";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=com";
pub const ADMIN_PASSWORD: &str = "admin-secret-Tr0ub4dor";

/// How long a server may take to answer after being started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at starting on fresh ports when another process took a port first.
const START_ATTEMPTS: usize = 5;

/// A running slapd. See the module documentation.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (plain; StartTLS is offered).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    pub base_dn: String,
    pub admin_dn: String,
    pub admin_password: String,
    /// A file holding exactly the admin password (no newline), for `SecretRef::File`.
    pub admin_password_file: PathBuf,
    /// PEM of the CA that signed the server certificate.
    pub ca_file: PathBuf,
    /// PEM of a CA that did not sign the server certificate.
    pub other_ca_file: PathBuf,
    dir: TempDir,
    child: Option<Child>,
}

impl Slapd {
    /// An empty tree: the base entry, `ou=People`, `ou=Contractors` and `ou=Groups`.
    pub fn start() -> Slapd {
        Slapd::start_with_ldif("")
    }

    /// The tree of `start`, plus the entries in `ldif` (entries under the base only),
    /// loaded with slapadd before the server starts.
    pub fn start_with_ldif(ldif: &str) -> Slapd {
        Slapd::start_configured(ldif, ServerCert::WithSan, "127.0.0.1", None)
    }

    /// An empty tree on a server with the `syncprov` overlay (RFC 4533 content sync) and a
    /// session log of 100 changes, so that deletes are named.
    pub fn start_with_syncprov() -> Slapd {
        Slapd::start_configured("", ServerCert::WithSan, "127.0.0.1", Some(""))
    }

    /// `start_with_syncprov`, whose syncprov also honours the reload hint
    /// (`syncprov-reloadhint TRUE`): a stale cookie is answered `e-syncRefreshRequired`
    /// (4096) instead of a present phase.
    pub fn start_with_syncprov_reload_hint() -> Slapd {
        Slapd::start_configured(
            "",
            ServerCert::WithSan,
            "127.0.0.1",
            Some("syncprov-reloadhint TRUE\n"),
        )
    }

    /// An empty tree served on `::1` only (`ldap://[::1]:PORT`, `ldaps://[::1]:PORT`); the
    /// server certificate lists `IP:::1` as a subjectAltName.
    pub fn start_on_ipv6() -> Slapd {
        Slapd::start_configured("", ServerCert::WithSan, "[::1]", None)
    }

    /// An empty tree whose server certificate has no subjectAltName at all (CN=127.0.0.1
    /// only), as Samba's self-made one.
    pub fn start_without_subject_alt_name() -> Slapd {
        Slapd::start_configured("", ServerCert::WithoutSan, "127.0.0.1", None)
    }

    /// `syncprov`: the overlay with these extra lines of its configuration, or no overlay.
    fn start_configured(ldif: &str, cert: ServerCert, host: &str, syncprov: Option<&str>) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("roster-slapd-")
            .tempdir()
            .expect("temp dir for slapd");
        let files = ServerFiles::write(dir.path(), cert, syncprov);
        let data = dir.path().join("data.ldif");
        fs::write(&data, format!("{}{ldif}", base_ldif())).expect("write LDIF");
        run(
            Command::new(sbin("slapadd"))
                .arg("-q")
                .arg("-f")
                .arg(&files.conf)
                .arg("-l")
                .arg(&data),
            None,
        );
        fs::remove_file(&data).expect("remove loaded LDIF");

        let mut slapd = Slapd {
            url: String::new(),
            ldaps_url: String::new(),
            base_dn: BASE_DN.to_string(),
            admin_dn: ADMIN_DN.to_string(),
            admin_password: ADMIN_PASSWORD.to_string(),
            admin_password_file: files.password,
            ca_file: files.ca,
            other_ca_file: files.other_ca,
            dir,
            child: None,
        };
        slapd.launch(&files.conf, host);
        slapd
    }

    /// Starts slapd on fresh ports, retrying when a port was taken between choosing it and
    /// slapd binding it.
    fn launch(&mut self, conf: &Path, host: &str) {
        let log = self.dir.path().join("slapd.log");
        for _ in 0..START_ATTEMPTS {
            let (port, tls_port) = free_ports();
            self.url = format!("ldap://{host}:{port}");
            self.ldaps_url = format!("ldaps://{host}:{tls_port}");
            // `-d` keeps slapd in the foreground, so the child is the server itself; the
            // `stats` level logs one line per operation, which `searches` counts.
            let child = Command::new(sbin("slapd"))
                .arg("-f")
                .arg(conf)
                .arg("-h")
                .arg(format!("{}/ {}/", self.url, self.ldaps_url))
                .args(["-d", "stats"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log).expect("slapd log file"))
                .spawn()
                .expect("start slapd (is the slapd package installed?)");
            self.child = Some(child);
            match self.wait_until_answering() {
                Ok(()) => return,
                Err(exited) => {
                    let stderr = fs::read_to_string(&log).unwrap_or_default();
                    if exited && stderr.contains("Address already in use") {
                        continue;
                    }
                    self.kill();
                    panic!(
                        "slapd did not start on {} / {}; its log:\n{stderr}",
                        self.url, self.ldaps_url
                    );
                }
            }
        }
        panic!("slapd found no free ports in {START_ATTEMPTS} attempts");
    }

    /// `Err(true)` when slapd exited, `Err(false)` when it did not answer in time.
    fn wait_until_answering(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + START_TIMEOUT;
        let tls_addr = self.ldaps_url.trim_start_matches("ldaps://").to_string();
        while Instant::now() < deadline {
            let child = self.child.as_mut().expect("slapd child");
            if child.try_wait().expect("poll slapd").is_some() {
                self.child = None;
                return Err(true);
            }
            let root_dse = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-LLL",
                    "-o",
                    "nettimeout=1",
                    "-H",
                    &self.url,
                    "-b",
                    "",
                    "-s",
                    "base",
                    "1.1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run ldapsearch (is ldap-utils installed?)");
            if root_dse.success() && TcpStream::connect(&tls_addr).is_ok() {
                // Answered, but perhaps another server took the port: ours must still run.
                let child = self.child.as_mut().expect("slapd child");
                if child.try_wait().expect("poll slapd").is_some() {
                    self.child = None;
                    return Err(true);
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(false)
    }

    /// Adds entries (LDIF) as admin.
    pub fn add(&self, ldif: &str) {
        run(&mut self.ldap_tool("ldapadd"), Some(ldif));
    }

    /// Applies an LDIF change record (`changetype: modify` ...) as admin.
    pub fn modify(&self, ldif: &str) {
        run(&mut self.ldap_tool("ldapmodify"), Some(ldif));
    }

    /// Deletes one entry as admin.
    pub fn delete(&self, dn: &str) {
        run(self.ldap_tool("ldapdelete").arg(dn), None);
    }

    /// Kills the server at once, as a crash would, leaving the value in place: for tests of
    /// a connection lost half-way.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and removes its directory.
    pub fn stop(self) {}

    /// What slapd has logged so far: start-up problems and one line per operation.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// How many search operations the server has received so far (the readiness probes
    /// included): a paged read shows one per page.
    pub fn searches(&self) -> usize {
        self.log()
            .lines()
            .filter(|line| line.contains(" SRCH base="))
            .count()
    }

    fn ldap_tool(&self, tool: &str) -> Command {
        let mut command = Command::new(tool);
        command
            .args(["-x", "-H", &self.url, "-D", &self.admin_dn, "-y"])
            .arg(&self.admin_password_file);
        command
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An `inetOrgPerson` under `ou=People`, as LDIF ending in a blank line.
pub fn person(uid: &str, cn: &str, mail: Option<&str>, phones: &[&str]) -> String {
    person_in("People", uid, cn, mail, phones)
}

/// An `inetOrgPerson` under `ou=<ou>` (People or Contractors), as LDIF ending in a blank line.
pub fn person_in(ou: &str, uid: &str, cn: &str, mail: Option<&str>, phones: &[&str]) -> String {
    let sn = cn.rsplit(' ').next().unwrap_or(cn);
    let mut ldif = format!(
        "dn: uid={uid},ou={ou},{BASE_DN}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {sn}\n"
    );
    if let Some(mail) = mail {
        writeln!(ldif, "mail: {mail}").expect("write to String");
    }
    for phone in phones {
        writeln!(ldif, "telephoneNumber: {phone}").expect("write to String");
    }
    ldif.push('\n');
    ldif
}

/// `n` people under `ou=People`: uid `user000001`..., cn `User 000001`, a mail and a phone each.
pub fn people_ldif(n: usize) -> String {
    let mut ldif = String::with_capacity(n * 200);
    for i in 1..=n {
        let uid = format!("user{i:06}");
        let mail = format!("{uid}@example.com");
        let phone = format!("+1 555 {i:07}");
        ldif.push_str(&person(
            &uid,
            &format!("User {i:06}"),
            Some(&mail),
            &[&phone],
        ));
    }
    ldif
}

/// The DN of a person made by `person` or `people_ldif`.
pub fn person_dn(uid: &str) -> String {
    format!("uid={uid},ou=People,{BASE_DN}")
}

fn base_ldif() -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"
    );
    for ou in ["People", "Contractors", "Groups"] {
        writeln!(
            ldif,
            "dn: ou={ou},{BASE_DN}\nobjectClass: organizationalUnit\nou: {ou}\n"
        )
        .expect("write to String");
    }
    ldif
}

/// A stand-in for AD's objectGUID (OpenLDAP's experimental OID arc, tests only).
const TEST_SCHEMA: &str = "\
attributetype ( 1.3.6.1.4.1.4203.666.11.90.1 NAME 'objectGUID'
    DESC 'test stand-in for the Active Directory attribute'
    EQUALITY octetStringMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.90.3 NAME 'userAccountControl'
    DESC 'test stand-in for the Active Directory attribute'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.4.1.4203.666.11.90.4 NAME 'accountExpires'
    DESC 'test stand-in for the Active Directory attribute'
    EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
objectclass ( 1.3.6.1.4.1.4203.666.11.90.2 NAME 'rosterTestAD' AUXILIARY
    MAY ( objectGUID $ userAccountControl $ accountExpires ) )
";

/// Which server certificate a test server presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerCert {
    /// subjectAltName IP:127.0.0.1, IP:::1, DNS:localhost.
    WithSan,
    /// No subjectAltName extension; CN=127.0.0.1.
    WithoutSan,
}

/// The files a server reads, written into its directory.
struct ServerFiles {
    conf: PathBuf,
    password: PathBuf,
    ca: PathBuf,
    other_ca: PathBuf,
}

impl ServerFiles {
    fn write(dir: &Path, cert: ServerCert, syncprov: Option<&str>) -> ServerFiles {
        let certs = test_certs();
        let put = |name: &str, contents: &str| {
            let path = dir.join(name);
            fs::write(&path, contents).expect("write slapd file");
            path
        };
        let ca = put("ca.pem", &certs.ca);
        let other_ca = put("other-ca.pem", &certs.other_ca);
        let (server_cert, server_key) = match cert {
            ServerCert::WithSan => (
                put("server.pem", &certs.server_cert),
                put("server.key", &certs.server_key),
            ),
            ServerCert::WithoutSan => (
                put("server.pem", &certs.bare_cert),
                put("server.key", &certs.bare_key),
            ),
        };
        let schema = put("roster-test.schema", TEST_SCHEMA);
        let password = put("admin-password", ADMIN_PASSWORD);
        let db = dir.join("db");
        fs::create_dir(&db).expect("create slapd db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             include \"{schema}\"\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             {syncmod}pidfile \"{pid}\"\n\
             argsfile \"{args}\"\n\
             TLSCACertificateFile \"{ca}\"\n\
             TLSCertificateFile \"{cert}\"\n\
             TLSCertificateKeyFile \"{key}\"\n\
             # Paged searches of thousands of entries, by any bind.\n\
             sizelimit unlimited\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw \"{ADMIN_PASSWORD}\"\n\
             directory \"{db}\"\n\
             index objectClass eq\n{sync}",
            syncmod = if syncprov.is_some() {
                "moduleload syncprov\n"
            } else {
                ""
            },
            sync = match syncprov {
                Some(extra) => format!(
                    "index entryCSN,entryUUID eq\n\
                     overlay syncprov\n\
                     syncprov-checkpoint 1 1\n\
                     syncprov-sessionlog 100\n{extra}"
                ),
                None => String::new(),
            },
            schema = schema.display(),
            pid = dir.join("slapd.pid").display(),
            args = dir.join("slapd.args").display(),
            ca = ca.display(),
            cert = server_cert.display(),
            key = server_key.display(),
            db = db.display(),
        );
        ServerFiles {
            conf: put("slapd.conf", &conf),
            password,
            ca,
            other_ca,
        }
    }
}

/// PEM texts of the test PKI, generated once per test process.
struct TestCerts {
    ca: String,
    other_ca: String,
    server_cert: String,
    server_key: String,
    /// Signed by the same CA, without any subjectAltName.
    bare_cert: String,
    bare_key: String,
}

fn test_certs() -> &'static TestCerts {
    static CERTS: OnceLock<TestCerts> = OnceLock::new();
    CERTS.get_or_init(generate_certs)
}

/// A CA (v3, CA:TRUE), a server certificate it signs for 127.0.0.1 and localhost (SAN,
/// CA:FALSE, serverAuth: what Rustls insists on), and an unrelated second CA.
fn generate_certs() -> TestCerts {
    let dir = tempfile::tempdir().expect("temp dir for certificates");
    let path = |name: &str| dir.path().join(name);
    let new_ca = |name: &str, subject: &str| {
        run(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                ])
                .args(["-days", "30", "-subj", subject])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(path(&format!("{name}.key")))
                .arg("-out")
                .arg(path(&format!("{name}.pem"))),
            None,
        );
    };
    new_ca("ca", "/CN=roster test CA");
    new_ca("other-ca", "/CN=roster other test CA");
    let server = |name: &str, subject: &str, san: &str, serial: &str| {
        run(
            Command::new("openssl")
                .args([
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                ])
                .args(["-subj", subject])
                .arg("-keyout")
                .arg(path(&format!("{name}.key")))
                .arg("-out")
                .arg(path(&format!("{name}.csr"))),
            None,
        );
        fs::write(
            path(&format!("{name}.ext")),
            format!(
                "basicConstraints=critical,CA:FALSE\n\
                 {san}\
                 keyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("write certificate extensions");
        run(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "30", "-set_serial", serial])
                .arg("-in")
                .arg(path(&format!("{name}.csr")))
                .arg("-CA")
                .arg(path("ca.pem"))
                .arg("-CAkey")
                .arg(path("ca.key"))
                .arg("-extfile")
                .arg(path(&format!("{name}.ext")))
                .arg("-out")
                .arg(path(&format!("{name}.pem"))),
            None,
        );
    };
    server(
        "server",
        "/CN=localhost",
        "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n",
        "0x5eed",
    );
    server("bare", "/CN=127.0.0.1", "", "0x5eee");
    let read = |name: &str| fs::read_to_string(path(name)).expect("read generated PEM");
    TestCerts {
        ca: read("ca.pem"),
        other_ca: read("other-ca.pem"),
        server_cert: read("server.pem"),
        server_key: read("server.key"),
        bare_cert: read("bare.pem"),
        bare_key: read("bare.key"),
    }
}

/// Two distinct loopback ports nobody listens on right now. Another process may take one
/// before slapd binds it; `launch` retries then.
fn free_ports() -> (u16, u16) {
    let first = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let second = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = |l: &TcpListener| l.local_addr().expect("local address").port();
    (port(&first), port(&second))
}

/// A loopback port nobody listens on: for tests of a server that is down.
pub fn closed_port() -> u16 {
    free_ports().0
}

/// slapd and slapadd live in /usr/sbin, which is not on every user's PATH.
fn sbin(tool: &str) -> PathBuf {
    let path = Path::new("/usr/sbin").join(tool);
    if path.exists() {
        path
    } else {
        PathBuf::from(tool)
    }
}

/// Runs a command to completion, feeding `stdin`; panics with its output if it fails.
fn run(command: &mut Command, stdin: Option<&str>) {
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write to stdin");
    }
    let output = child.wait_with_output().expect("wait for command");
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
