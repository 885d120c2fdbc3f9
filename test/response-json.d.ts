// Tests read many JSON bodies whose shape the assertion itself checks; `any` here keeps them readable.
interface Response {
  // biome-ignore lint/suspicious/noExplicitAny: tests read JSON answers freely and assert on their shape
  json(): Promise<any>;
}
