module github.com/bascule-ota/bascule

go 1.23.0

require (
	github.com/BurntSushi/toml v1.5.0
	github.com/klauspost/compress v1.18.0
	github.com/ulikunitz/xz v0.5.15
	golang.org/x/sys v0.35.0
)
