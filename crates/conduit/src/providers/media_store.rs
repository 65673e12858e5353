//! Generated media on disk, served from `GET /v1/media/{file}`.
//!
//! File names are capability URLs: 24 random bytes (192 bits) in base64url, so a
//! name cannot be guessed and can be shown without credentials (the URLs go into
//! `<img>` tags and push notifications).

use std::path::{Path, PathBuf};

use crate::ids::random_token;

/// Writes media files and makes their absolute URLs.
#[derive(Debug, Clone)]
pub struct MediaStore {
    dir: PathBuf,
    public_url: String,
}

impl MediaStore {
    pub fn new(dir: PathBuf, public_url: &str) -> std::io::Result<MediaStore> {
        std::fs::create_dir_all(&dir)?;
        Ok(MediaStore {
            dir,
            public_url: public_url.trim_end_matches('/').to_string(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Saves `bytes` under a new unguessable name with `extension`; returns the URL.
    pub async fn save(&self, bytes: Vec<u8>, extension: &str) -> std::io::Result<String> {
        let name = format!("{}.{extension}", random_token(24));
        let path = self.dir.join(&name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(self.url_of(&name))
    }

    /// The absolute URL of a stored file name.
    pub fn url_of(&self, name: &str) -> String {
        format!("{}/v1/media/{name}", self.public_url)
    }
}
