//! Who may play what faceveil's RTSP server serves, and how it travels: the viewers' logins
//! (RTSP digest authentication, which sends no password over the wire) and TLS (rtsps://), and
//! the certificate authorities an rtsps:// camera is checked against.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use gst::prelude::*;
use gst_rtsp_server::gio;
use gst_rtsp_server::prelude::*;

use crate::cli::credentials::login::Login;

/// The role of a served stream's clients where no login is asked (TLS alone): they may see and
/// play every mount.
const VIEWER_ROLE: &str = "viewer";

/// The role of viewer `user`'s login. Each login has a role of its own, so that a mount can be
/// for some viewers only.
fn role_of(user: &str) -> String {
    format!("{VIEWER_ROLE}:{user}")
}

/// What a served stream asks of its clients. The default asks nothing: plain RTSP, open to
/// anyone who reaches the port.
#[derive(Clone, Default)]
pub struct Access {
    /// The logins a client must give one of (none: no login asked).
    pub viewers: Vec<Login>,
    /// The certificate the server presents, so that clients connect over TLS (rtsps://).
    pub certificate: Option<gio::TlsCertificate>,
}

impl Access {
    /// The URL scheme clients use.
    pub fn scheme(&self) -> &'static str {
        if self.certificate.is_some() { "rtsps" } else { "rtsp" }
    }

    /// What checks the clients; set it on the server (a new one applies to the clients that
    /// come after). `None` when nothing is asked.
    pub fn auth(&self) -> Option<gst_rtsp_server::RTSPAuth> {
        if self.viewers.is_empty() && self.certificate.is_none() {
            return None;
        }
        let auth = gst_rtsp_server::RTSPAuth::new();
        auth.set_tls_certificate(self.certificate.as_ref());
        let token = |role: &str| gst_rtsp_server::RTSPToken::builder().field("media.factory.role", role).build();
        if self.viewers.is_empty() {
            // TLS alone: every client is a viewer.
            auth.set_default_token(Some(&mut token(VIEWER_ROLE)));
            return Some(auth);
        }
        auth.set_supported_methods(gst_rtsp_server::gst_rtsp::RTSPAuthMethod::Digest);
        auth.set_realm(Some("faceveil"));
        for viewer in &self.viewers {
            auth.add_digest(&viewer.user, viewer.password(), &token(&role_of(&viewer.user)));
        }
        Some(auth)
    }

    /// What the server's start-up line says of it, e.g. ", for ops's login".
    pub fn describe(&self) -> String {
        match self.viewers.as_slice() {
            [] => String::new(),
            [one] => format!(", for {}'s login", one.user),
            many => format!(", for the logins of {} viewers", many.len()),
        }
    }
}

/// Sets up what `factory` serves for its server: who may see and play it ([`allow`]), and over
/// TLS (`tls`) its media stay inside the TLS connection: TCP only, as RTP over UDP would leave it
/// in the clear.
pub fn serve_on(factory: &gst_rtsp_server::RTSPMediaFactory, access: &Access, only: Option<&[String]>, tls: bool) {
    allow(factory, access, only);
    if tls {
        factory.set_protocols(gst_rtsp_server::gst_rtsp::RTSPLowerTrans::TCP);
    }
}

/// Lets `factory`'s clients see and play it: any client where `access` asks no login (a server
/// that checks nothing lets anyone in any case), else the viewers named in `only`, or every
/// viewer where it is `None`. Called again with a reload's access, it replaces each viewer's
/// permission; a viewer the reload dropped has no login left to give.
pub fn allow(factory: &gst_rtsp_server::RTSPMediaFactory, access: &Access, only: Option<&[String]>) {
    let role = |name: &str, allowed: bool| {
        gst::Structure::builder(name).field("media.factory.access", allowed).field("media.factory.construct", allowed).build()
    };
    factory.add_role_from_structure(&role(VIEWER_ROLE, true));
    for viewer in &access.viewers {
        let allowed = only.is_none_or(|names| names.contains(&viewer.user));
        factory.add_role_from_structure(&role(&role_of(&viewer.user), allowed));
    }
}

/// The server's certificate chain and private key from PEM files (`key`: where the key is kept
/// apart from the certificate).
pub fn certificate(cert: &Path, key: Option<&Path>) -> Result<gio::TlsCertificate> {
    match key {
        Some(key) => gio::TlsCertificate::from_files(cert, key),
        None => gio::TlsCertificate::from_file(cert),
    }
    .with_context(|| format!("cannot read the TLS certificate {} (PEM, with its private key)", cert.display()))
}

/// Makes a source that asks about the certificates it refuses (rtspsrc over rtsps://) say why it
/// refused one: its own error says no more than "Failed to connect". Other sources (souphttpsrc
/// checks certificates too, but has no such signal) are left as they are.
pub fn explain_refused_certificates(source: &gst::Element) {
    if gst::glib::subclass::SignalId::lookup("accept-certificate", source.type_()).is_none() {
        return;
    }
    let element = source.downgrade();
    source.connect("accept-certificate", false, move |args| {
        let flags = args.get(3).and_then(|v| v.get::<gio::TlsCertificateFlags>().ok()).unwrap_or(gio::TlsCertificateFlags::GENERIC_ERROR);
        let reasons: Vec<&str> = [
            (gio::TlsCertificateFlags::UNKNOWN_CA, "no authority this machine trusts vouches for it"),
            (gio::TlsCertificateFlags::BAD_IDENTITY, "it names another host"),
            (gio::TlsCertificateFlags::NOT_ACTIVATED, "it is not valid yet"),
            (gio::TlsCertificateFlags::EXPIRED, "it has expired"),
            (gio::TlsCertificateFlags::REVOKED, "it was revoked"),
            (gio::TlsCertificateFlags::INSECURE, "its algorithm is insecure"),
        ]
        .into_iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, reason)| reason)
        .collect();
        let reasons = if reasons.is_empty() { "it does not validate".to_string() } else { reasons.join("; ") };
        if let Some(element) = element.upgrade() {
            element.post_error_message(gst::error_msg!(
                gst::ResourceError::OpenReadWrite,
                ["the server's TLS certificate is refused: {reasons} (a camera's own authority is trusted with --source-ca, or source_ca in a serve config)"]
            ));
        }
        Some(false.to_value())
    });
}

/// The certificate authorities an rtsps:// source's certificate must chain to (PEM), for a
/// camera whose certificate the system does not trust (one it made itself, say).
#[derive(Clone, Debug, PartialEq)]
pub struct Authorities(PathBuf);

impl Authorities {
    /// Checked now, so that a bad file is an error before any connection. Kept as an absolute
    /// path: GIO's file database takes a relative one, reads it (this check passed), and then
    /// trusts none of it ("The anchor file name used with a GTlsFileDatabase must be an absolute
    /// path"), so every certificate it should vouch for was refused.
    pub fn read(path: &Path) -> Result<Self> {
        let path =
            std::path::absolute(path).with_context(|| format!("cannot find the certificate authorities {}", path.display()))?;
        gio::TlsFileDatabase::new(&path)
            .with_context(|| format!("cannot read the certificate authorities {} (PEM)", path.display()))?;
        Ok(Self(path))
    }

    /// Hands them to a source element that checks certificates (rtspsrc's `tls-database`).
    pub fn give_to(&self, source: &gst::Element) -> Result<()> {
        anyhow::ensure!(
            source.find_property("tls-database").is_some(),
            "certificate authorities were given, but this source checks none"
        );
        let database = gio::TlsFileDatabase::new(&self.0)
            .with_context(|| format!("cannot read the certificate authorities {}", self.0.display()))?;
        source.set_property("tls-database", database.upcast::<gio::TlsDatabase>());
        Ok(())
    }
}
