// uWebSockets.js 20.30 has TemplatedApp.close() at runtime (it closes the
// listen sockets and force-closes every connection of the app), but its
// typings lack it. Checked against the installed build: typeof app.close === 'function'.
import 'uWebSockets.js';

declare module 'uWebSockets.js' {
  interface TemplatedApp {
    close(): TemplatedApp;
  }
}
