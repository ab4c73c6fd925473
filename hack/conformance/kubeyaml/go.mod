// kubectl's manifest reading, built by tests/unit/plugins/module_utils/test_kube_yaml_conformance.py.
// Versions as Kubernetes 1.33 and Helm 3.18 build them: apimachinery v0.33, sigs.k8s.io/yaml v1.5.0 (Helm 3.18's;
// its YAML parser is go.yaml.in/yaml/v2).
module berth.converge/hack/conformance/kubeyaml

go 1.24.0

require k8s.io/apimachinery v0.33.13

require (
	github.com/fxamacker/cbor/v2 v2.7.0 // indirect
	github.com/go-logr/logr v1.4.3 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/json-iterator/go v1.1.12 // indirect
	github.com/modern-go/concurrent v0.0.0-20180306012644-bacd9c7ef1dd // indirect
	github.com/modern-go/reflect2 v1.0.2 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	k8s.io/klog/v2 v2.130.1 // indirect
	sigs.k8s.io/json v0.0.0-20241010143419-9aa6b5e7a4b3 // indirect
	sigs.k8s.io/structured-merge-diff/v4 v4.6.0 // indirect
	sigs.k8s.io/yaml v1.5.0 // indirect
)
