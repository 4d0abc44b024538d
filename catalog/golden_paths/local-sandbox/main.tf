# local-sandbox: runs anywhere, offline, with only the built-in terraform_data resource.
# Every value reaches the shell through `environment` and is used quoted ("$VAR"); none is
# interpolated into a command string.

locals {
  dir = "${var.goldpath_home}/workspaces/${var.goldpath_workspace_id}"
}

# The checkout: made once per repository/ref, removed when the workspace is deleted.
# `repository` is the resolved address of a repository registered in Goldpath (checked again by the portal
# right before this build). Git honours nothing the repository, the checkout or the worker's git config says:
# no system or global config, no hooks, no fsmonitor, and no local-clone shortcuts (--no-local: objects are
# copied through the pack protocol, never hard-linked or read through the source's alternates or symlinks).
resource "terraform_data" "checkout" {
  input            = local.dir
  triggers_replace = [var.repository, var.ref]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      mkdir -p "$DIR/.goldpath"
      # always a fresh clone: a checkout left behind (a tainted resource skips its destroy step) was the
      # workspace's, and its .git/config must never steer a git command run here, outside the sandbox
      if [ -e "$DIR/src" ]; then chmod -R u+rwX "$DIR/src" 2>/dev/null || true; rm -rf "$DIR/src"; fi
      git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c protocol.file.allow=always \
        clone --no-local --quiet -- "$REPOSITORY" "$DIR/src"
      # the portal accepts only ref names and shas; still, a value starting with '-' never reaches git
      # (git 2.39's checkout has no working --end-of-options), and `--` ends it as a revision
      case "$REF" in
        -* | "")
          echo "ref '$REF' is not a branch, tag or commit" >&2
          exit 1
          ;;
      esac
      if ! git -c core.hooksPath=/dev/null -c core.fsmonitor=false -C "$DIR/src" checkout --quiet "$REF" -- 2>/dev/null; then
        echo "ref '$REF' not found in $REPOSITORY" >&2
        exit 1
      fi
    EOT
    environment = {
      DIR                 = local.dir
      REPOSITORY          = var.repository
      REF                 = var.ref
      GIT_CONFIG_NOSYSTEM = "1"
      GIT_CONFIG_GLOBAL   = "/dev/null"
      GIT_TERMINAL_PROMPT = "0"
    }
  }

  provisioner "local-exec" {
    when    = destroy
    command = <<-EOT
      if [ -f "$DIR/.goldpath/session.pid" ]; then
        pid="$(cat "$DIR/.goldpath/session.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      fi
      chmod -R u+rwX "$DIR" 2>/dev/null || true  # a workspace may have made its files read-only
      rm -rf "$DIR"
    EOT
    environment = {
      DIR = self.input
    }
  }
}

# Configuration and the workspace session: re-run on every build (start brings the session up, stop takes it
# down), keeping the checkout; and whenever the checkout is made again. The session is Goldpath's workspace
# agent in a bubblewrap sandbox (catalog.workspace_host): it dials out to the portal and serves terminals.
resource "terraform_data" "session" {
  depends_on = [terraform_data.checkout]
  triggers_replace = [
    var.goldpath_transition, var.display_name, var.goldpath_tools, var.memory_mb, var.allow_network,
    var.goldpath_agent_launch, terraform_data.checkout.id,
  ]

  provisioner "local-exec" {
    command = <<-EOT
      set -eu
      mkdir -p "$DIR/.goldpath"
      printf '# %s\n\nWorkspace %s of %s, repository %s at %s.\n' "$NAME" "$WS_NAME" "$OWNER" "$REPOSITORY" "$REF" > "$DIR/WORKSPACE.md"
      printf '%s\n' "$TOOLS" > "$DIR/.goldpath/tools.json"
      printf '{"memory_mb": %s, "allow_network": %s}\n' "$MEMORY" "$NETWORK" > "$DIR/.goldpath/limits.json"
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
    }
  }

  # the session spec (agent token, gateway key): 0600, read and removed by the session supervisor
  provisioner "local-exec" {
    command     = "umask 077; printf '%s' \"$SESSION\" > \"$DIR/.goldpath/session.json\""
    environment = {
      DIR     = local.dir
      SESSION = var.goldpath_session
    }
  }

  # start | stop, run without a shell: the supervisor's argv, then the workspace folder and the transition
  provisioner "local-exec" {
    interpreter = concat(jsondecode(var.goldpath_agent_launch), [local.dir])
    command     = var.goldpath_transition
    environment = {
      GOLDPATH_WS_MEMORY_MB     = tostring(var.memory_mb)
      GOLDPATH_WS_ALLOW_NETWORK = tostring(var.allow_network)
    }
  }
}

output "path" {
  value = local.dir
}

output "terminal" {
  value = "Open the Terminal on the workspace page, or: goldpath shell ${var.goldpath_workspace_id}"
}
