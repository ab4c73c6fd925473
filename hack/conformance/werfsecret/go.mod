// werf's secret code, built by tests/unit/plugins/module_utils/test_werf_secrets_conformance.py.
module berth.converge/hack/conformance/werfsecret

go 1.24.0

require github.com/werf/common-go v0.0.0-20251113140850-a1a98e909e9b

require (
	github.com/kr/text v0.2.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
