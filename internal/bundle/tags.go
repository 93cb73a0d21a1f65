package bundle

import "github.com/bascule-ota/bascule/internal/stlv"

// Tags of the Rugix bundle format. Bit 31 marks optional atoms.
const (
	TagBundle                 stlv.Tag = 0x6b50741c
	TagHeader                 stlv.Tag = 0x49af6433
	TagHeaderManifest         stlv.Tag = 0x161aa242
	TagHeaderIsIncremental    stlv.Tag = 0x20f3d16b
	TagHeaderHashAlgorithm    stlv.Tag = 0x5cb80dd6
	TagHeaderPayloadIndex     stlv.Tag = 0x13737992
	TagEntryTypeSlot          stlv.Tag = 0x45ca7e7e
	TagSlotSlot               stlv.Tag = 0x1b231de7
	TagEntryTypeExecute       stlv.Tag = 0x3adf32f5
	TagExecuteHandler         stlv.Tag = 0x4b3836a2
	TagEntryHeaderHash        stlv.Tag = 0x5f6a60b1
	TagEntryFileHash          stlv.Tag = 0x0c8d1fd0
	TagEntryDeltaEncoding     stlv.Tag = 0x272cdf9f
	TagDeltaFormat            stlv.Tag = 0x3b8aeb9a
	TagDeltaInput             stlv.Tag = 0x4e08b9f1
	TagDeltaInputHash         stlv.Tag = 0x3a0d1307
	TagDeltaOriginalHash      stlv.Tag = 0x64760e1c
	TagSignatures             stlv.Tag = 0xa83936f1
	TagSignaturesCMS          stlv.Tag = 0x9795498f
	TagPayloads               stlv.Tag = 0x01f38fba
	TagPayload                stlv.Tag = 0x490cafaf
	TagPayloadHeader          stlv.Tag = 0x0959ca75
	TagPayloadBlockEncoding   stlv.Tag = 0x40ed9314
	TagBlockChunker           stlv.Tag = 0x55872cf8
	TagBlockHashAlgorithm     stlv.Tag = 0x7f1f994b
	TagBlockDeduplicated      stlv.Tag = 0x05902926
	TagBlockCompression       stlv.Tag = 0x783217c6
	TagBlockHashes            stlv.Tag = 0x76b3d7a0
	TagBlockSizes             stlv.Tag = 0x27e5d3f2
	TagPayloadData            stlv.Tag = 0x42fd641a
	TagBlockIndex             stlv.Tag = 0x1ae50c8e
	TagBlockIndexChunker      stlv.Tag = 0x5cdf21b0
	TagBlockIndexHashAlg      stlv.Tag = 0x1d92a080
	TagBlockIndexBlockHashes  stlv.Tag = 0x55e547d8
	TagBlockIndexBlockSizes   stlv.Tag = 0x4668c5ba
	TagSignedMetadata         stlv.Tag = 0x61d0871e
	TagSignedMetadataHeadHash stlv.Tag = 0x1f992dfc

	// TagHeaderRequires is a Bascule extension: a repeated string naming
	// features a reader must implement to decode the bundle (e.g. "zstd").
	// The tag is *required* (bit 31 clear) on purpose, so that Rugix, which
	// does not know it, rejects such a bundle while decoding the header,
	// before it touches any slot.
	TagHeaderRequires stlv.Tag = 0x2d6b1e58
)

// Magic is how every bundle starts: BUNDLE start then BUNDLE_HEADER start.
var Magic = []byte{0x6b, 0x50, 0x74, 0x1c, 0x40, 0x49, 0xaf, 0x64, 0x33, 0x40}

var tagNames = map[stlv.Tag]string{
	TagBundle: "BUNDLE", TagHeader: "BUNDLE_HEADER", TagHeaderManifest: "BUNDLE_HEADER_MANIFEST",
	TagHeaderIsIncremental: "BUNDLE_HEADER_IS_INCREMENTAL", TagHeaderHashAlgorithm: "BUNDLE_HEADER_HASH_ALGORITHM",
	TagHeaderPayloadIndex: "BUNDLE_HEADER_PAYLOAD_INDEX", TagEntryTypeSlot: "PAYLOAD_ENTRY_TYPE_SLOT",
	TagSlotSlot: "PAYLOAD_TYPE_SLOT_SLOT", TagEntryTypeExecute: "PAYLOAD_ENTRY_TYPE_EXECUTE",
	TagExecuteHandler: "PAYLOAD_TYPE_EXECUTE_HANDLER", TagEntryHeaderHash: "PAYLOAD_ENTRY_HEADER_HASH",
	TagEntryFileHash: "PAYLOAD_ENTRY_FILE_HASH", TagEntryDeltaEncoding: "PAYLOAD_ENTRY_DELTA_ENCODING",
	TagDeltaFormat: "DELTA_ENCODING_FORMAT", TagDeltaInput: "DELTA_ENCODING_INPUT",
	TagDeltaInputHash: "DELTA_ENCODING_INPUT_HASH", TagDeltaOriginalHash: "DELTA_ENCODING_ORIGINAL_HASH",
	TagSignatures: "SIGNATURES", TagSignaturesCMS: "SIGNATURES_CMS_SIGNATURE", TagPayloads: "PAYLOADS",
	TagPayload: "PAYLOAD", TagPayloadHeader: "PAYLOAD_HEADER", TagPayloadBlockEncoding: "PAYLOAD_HEADER_BLOCK_ENCODING",
	TagBlockChunker: "BLOCK_ENCODING_CHUNKER", TagBlockHashAlgorithm: "BLOCK_ENCODING_HASH_ALGORITHM",
	TagBlockDeduplicated: "BLOCK_ENCODING_DEDUPLICATED", TagBlockCompression: "BLOCK_ENCODING_COMPRESSION",
	TagBlockHashes: "BLOCK_ENCODING_BLOCK_HASHES", TagBlockSizes: "BLOCK_ENCODING_BLOCK_SIZES",
	TagPayloadData: "PAYLOAD_DATA", TagBlockIndex: "BLOCK_INDEX", TagBlockIndexChunker: "BLOCK_INDEX_CHUNKER",
	TagBlockIndexHashAlg: "BLOCK_INDEX_HASH_ALGORITHM", TagBlockIndexBlockHashes: "BLOCK_INDEX_BLOCK_HASHES",
	TagBlockIndexBlockSizes: "BLOCK_INDEX_BLOCK_SIZES", TagSignedMetadata: "SIGNED_METADATA",
	TagSignedMetadataHeadHash: "SIGNED_METADATA_HEADER_HASH", TagHeaderRequires: "BUNDLE_HEADER_REQUIRES (bascule)",
}

// TagName names a tag for error messages and dumps.
func TagName(t stlv.Tag) string {
	if n, ok := tagNames[t]; ok {
		return n
	}
	if t.Optional() {
		return "unknown optional"
	}
	return "unknown required"
}
