package bundle

import (
	"github.com/bascule-ota/bascule/internal/chunker"
	"github.com/bascule-ota/bascule/internal/hashes"
)

type chunkerSpec = chunker.Spec

var parseChunker = chunker.Parse

type hashDigest = hashes.Digest
