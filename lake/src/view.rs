//! A read view of the lake's store that lists only live data files (see [`crate::live`]):
//! registered with DataFusion so that queries never count a compacted row twice. Everything
//! but listing passes straight through.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use crate::{PartFile, live, parse_part};

/// The wrapper; see the module docs.
#[derive(Debug)]
pub struct LakeView {
    inner: Arc<dyn ObjectStore>,
}

impl LakeView {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        LakeView { inner }
    }
}

impl fmt::Display for LakeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeView({})", self.inner)
    }
}

/// Drops superseded data files from a listing; objects that are not data files stay.
fn keep_live(metas: Vec<ObjectMeta>) -> Vec<ObjectMeta> {
    let (parts, mut others): (Vec<_>, Vec<_>) = metas
        .into_iter()
        .partition(|meta| parse_part(&meta.location).is_some());
    // Hours and partitions alone do not tell tables apart: group by directory first.
    let mut by_dir: std::collections::BTreeMap<String, Vec<ObjectMeta>> = Default::default();
    for meta in parts {
        let dir = meta
            .location
            .as_ref()
            .rsplit_once('/')
            .map_or(String::new(), |(dir, _)| dir.to_owned());
        by_dir.entry(dir).or_default().push(meta);
    }
    for metas in by_dir.into_values() {
        let files: Vec<(PartFile, ObjectMeta)> = metas
            .into_iter()
            .filter_map(|meta| {
                let (hour, partition, first, last) = parse_part(&meta.location)?;
                let file = PartFile {
                    path: meta.location.clone(),
                    hour,
                    partition,
                    first,
                    last,
                    size: meta.size,
                };
                Some((file, meta))
            })
            .collect();
        let kept = live(files.iter().map(|(f, _)| f.clone()).collect());
        others.extend(
            files
                .into_iter()
                .filter(|(f, _)| kept.iter().any(|k| k.path == f.path))
                .map(|(_, meta)| meta),
        );
    }
    others
}

#[async_trait]
impl ObjectStore for LakeView {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let listing = self.inner.list(prefix);
        stream::once(async move { listing.try_collect::<Vec<_>>().await })
            .map_ok(|metas| stream::iter(keep_live(metas).into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.objects = keep_live(result.objects);
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
