// Command werfsecret runs werf's own secret code (github.com/werf/common-go) on requests, so that tests
// can check berth.converge's werf_secrets module against it.
//
// It reads a JSON array of requests on standard input and writes a JSON array of responses, one per
// request, in the same order. Each request has an "op":
//
//	encrypt       {key, plaintext}  -> {ciphertext}           secret.AesEncoder.Encrypt
//	decrypt       {key, ciphertext} -> {plaintext_b64}        secret.AesEncoder.Decrypt
//	encrypt_yaml  {key, yaml}       -> {yaml}                 secret.YamlEncoder.EncryptYamlData
//	decrypt_yaml  {key, yaml}       -> {yaml}                 secret.YamlEncoder.DecryptYamlData
//	find_key      {dir, env, home}  -> {key}                  secrets_manager.GetRequiredSecretKey
//
// A failing request gets {"error": "..."} instead. For find_key, "env" is the value of
// WERF_SECRET_KEY (unset when null) and "home" is werf's home directory.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"

	"github.com/werf/common-go/pkg/secret"
	"github.com/werf/common-go/pkg/secrets_manager"
)

type request struct {
	Op         string  `json:"op"`
	Key        string  `json:"key"`
	Plaintext  string  `json:"plaintext"`
	Ciphertext string  `json:"ciphertext"`
	Yaml       string  `json:"yaml"`
	Dir        string  `json:"dir"`
	Env        *string `json:"env"`
	Home       string  `json:"home"`
}

type response struct {
	Ciphertext   string `json:"ciphertext,omitempty"`
	PlaintextB64 string `json:"plaintext_b64,omitempty"`
	Yaml         string `json:"yaml,omitempty"`
	Key          string `json:"key,omitempty"`
	Error        string `json:"error,omitempty"`
}

func main() {
	var requests []request
	if err := json.NewDecoder(os.Stdin).Decode(&requests); err != nil {
		fmt.Fprintf(os.Stderr, "werfsecret: reading requests: %v\n", err)
		os.Exit(2)
	}
	responses := make([]response, len(requests))
	for i, req := range requests {
		resp, err := handle(req)
		if err != nil {
			resp = response{Error: err.Error()}
		}
		responses[i] = resp
	}
	if err := json.NewEncoder(os.Stdout).Encode(responses); err != nil {
		fmt.Fprintf(os.Stderr, "werfsecret: writing responses: %v\n", err)
		os.Exit(2)
	}
}

func handle(req request) (response, error) {
	if req.Op == "find_key" {
		return findKey(req)
	}
	encoder, err := secret.NewAesEncoder([]byte(req.Key))
	if err != nil {
		return response{}, err
	}
	yamlEncoder := secret.NewYamlEncoder(encoder)
	switch req.Op {
	case "encrypt":
		out, err := encoder.Encrypt([]byte(req.Plaintext))
		return response{Ciphertext: string(out)}, err
	case "decrypt":
		out, err := yamlEncoder.Decrypt([]byte(req.Ciphertext))
		return response{PlaintextB64: base64.StdEncoding.EncodeToString(out)}, err
	case "encrypt_yaml":
		out, err := yamlEncoder.EncryptYamlData([]byte(req.Yaml))
		return response{Yaml: string(out)}, err
	case "decrypt_yaml":
		out, err := yamlEncoder.DecryptYamlData([]byte(req.Yaml))
		return response{Yaml: string(out)}, err
	}
	return response{}, fmt.Errorf("unknown op %q", req.Op)
}

func findKey(req request) (response, error) {
	if req.Env == nil {
		os.Unsetenv("WERF_SECRET_KEY")
	} else {
		os.Setenv("WERF_SECRET_KEY", *req.Env)
	}
	secrets_manager.SetWerfHomeDir(req.Home)
	key, err := secrets_manager.GetRequiredSecretKey(req.Dir)
	return response{Key: string(key)}, err
}
