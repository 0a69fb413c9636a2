//! The tokio `Decoder` over the sans-I/O framer: a thin adapter, nothing more.

use bytes::BytesMut;
use schemas::{Frame, Rejected};
use tokio_util::codec::Decoder;

/// Yields each frame, or each rejected run of bytes, as the framer finds them.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl FrameCodec {
    pub fn new(max_frame_len: usize) -> Self {
        FrameCodec { max_frame_len }
    }
}

impl Decoder for FrameCodec {
    type Item = Result<Frame, Rejected>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Self::Item>> {
        Ok(Frame::parse(src, self.max_frame_len).transpose())
    }

    /// At end of stream, what cannot complete is rejected as truncated (then resynchronised).
    fn decode_eof(&mut self, src: &mut BytesMut) -> std::io::Result<Option<Self::Item>> {
        Ok(Frame::flush(src, self.max_frame_len))
    }
}
