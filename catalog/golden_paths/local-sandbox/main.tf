# local-sandbox: runs anywhere, offline, with only the built-in terraform_data resource.
# Every value reaches the shell through `environment` and is used quoted ("$VAR"); none is
# interpolated into a command string.

locals {
  dir = "${var.goldpath_home}/workspaces/${var.goldpath_workspace_id}"
}

# The checkout: made once per repository/ref, removed when the workspace is deleted.
resource "terraform_data" "checkout" {
  input            = local.dir
  triggers_replace = [var.repository, var.ref]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      mkdir -p "$DIR/.goldpath"
      if [ ! -d "$DIR/src/.git" ]; then
        rm -rf "$DIR/src"
        git clone --quiet -- "$REPOSITORY" "$DIR/src"
      fi
      if ! git -C "$DIR/src" checkout --quiet "$REF" -- 2>/dev/null; then
        echo "ref '$REF' not found in $REPOSITORY" >&2
        exit 1
      fi
    EOT
    environment = {
      DIR        = local.dir
      REPOSITORY = var.repository
      REF        = var.ref
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = "if [ -f \"$DIR/.goldpath/session.pid\" ]; then kill \"$(cat \"$DIR/.goldpath/session.pid\")\" 2>/dev/null || true; fi; rm -rf \"$DIR\""
    environment = {
      DIR = self.input
    }
  }
}

# Configuration and the workspace session: re-run on every transition (start brings the session
# process up, stop takes it down), keeping the checkout.
resource "terraform_data" "session" {
  depends_on       = [terraform_data.checkout]
  triggers_replace = [var.goldpath_transition, var.display_name, var.goldpath_tools, var.memory_mb, var.allow_network]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      mkdir -p "$DIR/.goldpath"
      printf '# %s\n\nWorkspace %s of %s, repository %s at %s.\n' "$NAME" "$WS_NAME" "$OWNER" "$REPOSITORY" "$REF" > "$DIR/WORKSPACE.md"
      printf '%s\n' "$TOOLS" > "$DIR/.goldpath/tools.json"
      printf '{"memory_mb": %s, "allow_network": %s}\n' "$MEMORY" "$NETWORK" > "$DIR/.goldpath/limits.json"
      if [ -f "$DIR/.goldpath/session.pid" ]; then kill "$(cat "$DIR/.goldpath/session.pid")" 2>/dev/null || true; rm -f "$DIR/.goldpath/session.pid"; fi
      if [ "$TRANSITION" = "start" ]; then
        nohup setsid sh -c 'exec sleep 2147483647' >/dev/null 2>&1 &
        echo $! > "$DIR/.goldpath/session.pid"
        echo running > "$DIR/.goldpath/state"
      else
        echo stopped > "$DIR/.goldpath/state"
      fi
    EOT
    environment = {
      DIR        = local.dir
      NAME       = var.display_name
      WS_NAME    = var.goldpath_workspace_name
      OWNER      = var.goldpath_owner
      REPOSITORY = var.repository
      REF        = var.ref
      TOOLS      = var.goldpath_tools
      MEMORY     = tostring(var.memory_mb)
      NETWORK    = tostring(var.allow_network)
      TRANSITION = var.goldpath_transition
    }
  }
}

output "path" {
  value = local.dir
}

output "shell_command" {
  value = "bwrap --unshare-all${var.allow_network ? " --share-net" : ""} --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp --bind ${local.dir}/src /workspace --chdir /workspace /bin/bash"
}
