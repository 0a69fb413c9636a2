//! placeholder
#[derive(Debug)]
pub struct Processor;
