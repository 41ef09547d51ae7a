//! A small, portable BLAKE3 with a byte-slice `derive_key`.
//!
//! Xray calls `blake3.DeriveKey(out, string(ctx), key)` with *binary*
//! contexts (IVs, public keys, ciphertexts). The `blake3` crate only accepts
//! `&str` contexts, so this file implements the reference algorithm (the
//! BLAKE3 paper's `reference_impl`): one compression function, the 1024-byte
//! chunk state and the chaining-value stack that builds the binary tree.
//! Only 32-byte output is needed, so there is no extendable output.
//! Speed is irrelevant here: it runs a few times per handshake on short input.

use zeroize::Zeroize;

const OUT_LEN: usize = 32;
const BLOCK_LEN: usize = 64;
const CHUNK_LEN: usize = 1024;

const CHUNK_START: u32 = 1 << 0;
const CHUNK_END: u32 = 1 << 1;
const PARENT: u32 = 1 << 2;
const ROOT: u32 = 1 << 3;
const DERIVE_KEY_CONTEXT: u32 = 1 << 5;
const DERIVE_KEY_MATERIAL: u32 = 1 << 6;

const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];

const MSG_PERMUTATION: [usize; 16] = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8];

/// BLAKE3 derive-key mode with an arbitrary byte context: the context is
/// hashed with `DERIVE_KEY_CONTEXT` into a key, which then keys the hash of
/// `material` with `DERIVE_KEY_MATERIAL`. Equals `blake3::derive_key` when
/// `context` is UTF-8.
pub fn derive_key(context: &[u8], material: &[u8]) -> [u8; 32] {
    let mut context_key = hash_with(IV, DERIVE_KEY_CONTEXT, context);
    let mut key_words = words_from_le_bytes(&context_key);
    let out = hash_with(key_words, DERIVE_KEY_MATERIAL, material);
    context_key.zeroize();
    key_words.zeroize();
    out
}

fn g(state: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize, mx: u32, my: u32) {
    state[a] = state[a].wrapping_add(state[b]).wrapping_add(mx);
    state[d] = (state[d] ^ state[a]).rotate_right(16);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_right(12);
    state[a] = state[a].wrapping_add(state[b]).wrapping_add(my);
    state[d] = (state[d] ^ state[a]).rotate_right(8);
    state[c] = state[c].wrapping_add(state[d]);
    state[b] = (state[b] ^ state[c]).rotate_right(7);
}

fn round(state: &mut [u32; 16], m: &[u32; 16]) {
    // Columns, then diagonals.
    g(state, 0, 4, 8, 12, m[0], m[1]);
    g(state, 1, 5, 9, 13, m[2], m[3]);
    g(state, 2, 6, 10, 14, m[4], m[5]);
    g(state, 3, 7, 11, 15, m[6], m[7]);
    g(state, 0, 5, 10, 15, m[8], m[9]);
    g(state, 1, 6, 11, 12, m[10], m[11]);
    g(state, 2, 7, 8, 13, m[12], m[13]);
    g(state, 3, 4, 9, 14, m[14], m[15]);
}

fn compress(
    cv: &[u32; 8],
    block: &[u32; 16],
    counter: u64,
    block_len: u32,
    flags: u32,
) -> [u32; 16] {
    let mut state = [
        cv[0],
        cv[1],
        cv[2],
        cv[3],
        cv[4],
        cv[5],
        cv[6],
        cv[7],
        IV[0],
        IV[1],
        IV[2],
        IV[3],
        counter as u32,
        (counter >> 32) as u32,
        block_len,
        flags,
    ];
    let mut m = *block;
    for r in 0..7 {
        round(&mut state, &m);
        if r < 6 {
            m = std::array::from_fn(|i| m[MSG_PERMUTATION[i]]);
        }
    }
    for i in 0..8 {
        state[i] ^= state[i + 8];
        state[i + 8] ^= cv[i];
    }
    m.zeroize();
    state
}

fn first_8(words: [u32; 16]) -> [u32; 8] {
    std::array::from_fn(|i| words[i])
}

fn words_from_le_bytes<const N: usize>(bytes: &[u8]) -> [u32; N] {
    std::array::from_fn(|i| {
        u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    })
}

/// What a node (chunk or parent) yields before we know if it is the root.
struct Output {
    input_cv: [u32; 8],
    block: [u32; 16],
    counter: u64,
    block_len: u32,
    flags: u32,
}

impl Output {
    fn chaining_value(&self) -> [u32; 8] {
        first_8(compress(
            &self.input_cv,
            &self.block,
            self.counter,
            self.block_len,
            self.flags,
        ))
    }

    fn root_bytes(&self) -> [u8; OUT_LEN] {
        // Output block 0 of the root; 32 bytes need only the first 8 words.
        let words = compress(
            &self.input_cv,
            &self.block,
            0,
            self.block_len,
            self.flags | ROOT,
        );
        let mut out = [0u8; OUT_LEN];
        for (dst, w) in out.chunks_exact_mut(4).zip(words.iter()) {
            dst.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

struct ChunkState {
    cv: [u32; 8],
    chunk_counter: u64,
    block: [u8; BLOCK_LEN],
    block_len: usize,
    blocks_compressed: u8,
    flags: u32,
}

impl ChunkState {
    fn new(key: [u32; 8], chunk_counter: u64, flags: u32) -> Self {
        ChunkState {
            cv: key,
            chunk_counter,
            block: [0; BLOCK_LEN],
            block_len: 0,
            blocks_compressed: 0,
            flags,
        }
    }

    fn len(&self) -> usize {
        BLOCK_LEN * self.blocks_compressed as usize + self.block_len
    }

    fn start_flag(&self) -> u32 {
        if self.blocks_compressed == 0 {
            CHUNK_START
        } else {
            0
        }
    }

    fn update(&mut self, mut input: &[u8]) {
        while !input.is_empty() {
            // A full block is compressed only once more input arrives: the
            // last block of a chunk must carry CHUNK_END instead.
            if self.block_len == BLOCK_LEN {
                let words = words_from_le_bytes(&self.block);
                self.cv = first_8(compress(
                    &self.cv,
                    &words,
                    self.chunk_counter,
                    BLOCK_LEN as u32,
                    self.flags | self.start_flag(),
                ));
                self.blocks_compressed += 1;
                self.block = [0; BLOCK_LEN];
                self.block_len = 0;
            }
            let take = (BLOCK_LEN - self.block_len).min(input.len());
            self.block[self.block_len..self.block_len + take].copy_from_slice(&input[..take]);
            self.block_len += take;
            input = &input[take..];
        }
    }

    fn output(&self) -> Output {
        Output {
            input_cv: self.cv,
            block: words_from_le_bytes(&self.block),
            counter: self.chunk_counter,
            block_len: self.block_len as u32,
            flags: self.flags | self.start_flag() | CHUNK_END,
        }
    }
}

impl Drop for ChunkState {
    fn drop(&mut self) {
        self.block.zeroize();
        self.cv.zeroize();
    }
}

fn parent_output(left: [u32; 8], right: [u32; 8], key: [u32; 8], flags: u32) -> Output {
    let mut block = [0u32; 16];
    block[..8].copy_from_slice(&left);
    block[8..].copy_from_slice(&right);
    Output {
        input_cv: key,
        block,
        counter: 0,
        block_len: BLOCK_LEN as u32,
        flags: PARENT | flags,
    }
}

/// Hashes `input` with key words `key` and mode `flags` to 32 bytes.
fn hash_with(key: [u32; 8], flags: u32, mut input: &[u8]) -> [u8; OUT_LEN] {
    let mut chunk = ChunkState::new(key, 0, flags);
    // Chaining values of completed subtrees, one per set bit of the chunk count.
    let mut stack: Vec<[u32; 8]> = Vec::new();
    while !input.is_empty() {
        if chunk.len() == CHUNK_LEN {
            let mut cv = chunk.output().chaining_value();
            let mut total_chunks = chunk.chunk_counter + 1;
            // Merge finished subtrees: each trailing zero bit of the count
            // closes one level of the tree.
            while total_chunks & 1 == 0 {
                let left = stack.pop().expect("a set bit per stacked subtree");
                cv = parent_output(left, cv, key, flags).chaining_value();
                total_chunks >>= 1;
            }
            stack.push(cv);
            chunk = ChunkState::new(key, chunk.chunk_counter + 1, flags);
        }
        let take = (CHUNK_LEN - chunk.len()).min(input.len());
        chunk.update(&input[..take]);
        input = &input[take..];
    }
    let mut output = chunk.output();
    while let Some(left) = stack.pop() {
        output = parent_output(left, output.chaining_value(), key, flags);
    }
    let out = output.root_bytes();
    stack.zeroize();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("fixtures/blake3_derive_key.txt");
    const CONTEXT: &str = "BLAKE3 2019-12-27 16:29:52 test vectors context";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The official input: 0, 1, …, 250 repeating.
    fn official_input(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn official_derive_key_vectors() {
        let mut checked = 0;
        for line in VECTORS
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (len, want) = line.split_once(' ').unwrap();
            let len: usize = len.parse().unwrap();
            let got = derive_key(CONTEXT.as_bytes(), &official_input(len));
            assert_eq!(hex(&got), want, "input_len {len}");
            checked += 1;
        }
        assert_eq!(checked, 11);
    }

    /// Cross-check against the `blake3` crate for many context and material
    /// lengths around the block, chunk and tree boundaries.
    #[test]
    fn matches_blake3_crate_on_utf8_contexts() {
        let lens = [
            0usize, 1, 31, 32, 63, 64, 65, 127, 128, 1023, 1024, 1025, 2048, 2049, 3072, 4096,
            4097, 5000, 8192, 8193, 16385,
        ];
        for &cl in &lens {
            let context: String = (0..cl).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            for &ml in &lens {
                let material = official_input(ml);
                assert_eq!(
                    derive_key(context.as_bytes(), &material),
                    ::blake3::derive_key(&context, &material),
                    "context {cl} material {ml}"
                );
            }
        }
    }

    #[test]
    fn binary_contexts_differ_by_one_bit() {
        let a = derive_key(&[0u8; 16], b"key");
        let b = derive_key(&[1u8; 16], b"key");
        assert_ne!(a, b);
        // Non-UTF-8 bytes are fine (the point of this module).
        let c = derive_key(&[0xff, 0xfe, 0x80], b"key");
        assert_ne!(a, c);
    }
}
