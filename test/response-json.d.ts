// Tests read many JSON bodies whose shape the assertion itself checks; `any` here keeps them readable.
interface Response {
  json(): Promise<any>;
}
