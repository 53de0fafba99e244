// The cnndsl extension: starts `cnndsl lsp` (the setting cnndsl.path names the command)
// for .cnn files, and passes the inlay-hint setting to it, at start and when it changes.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function settings() {
  const config = vscode.workspace.getConfiguration("cnndsl");
  return { path: config.get("path", "cnndsl"), inlayHints: config.get("inlayHints", true) };
}

function activate(context) {
  const { path, inlayHints } = settings();
  const server = { command: path, args: ["lsp"], transport: TransportKind.stdio };
  client = new LanguageClient("cnndsl", "cnndsl", { run: server, debug: server }, {
    documentSelector: [{ scheme: "file", language: "cnn" }, { scheme: "untitled", language: "cnn" }],
    initializationOptions: { inlayHints },
    synchronize: { configurationSection: "cnndsl" },
  });
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("cnndsl.path")) {
        vscode.window.showInformationMessage("cnndsl: reload the window to use the new cnndsl.path");
      }
    })
  );
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
