// Run in the storefront's page by tests/web/test_storefront.py (page.evaluate): `users`
// customers, each with `orders` orders of one product, PlaceOrder alone timed from the
// browser (fetch: the page's own network stack, through the edge).
async ({users, orders}) => {
  const ms = [], states = [];
  // Sign-ups and logins are rate limited per client: wait as the edge says (429).
  const json = async (method, path, body, token) => {
    for (;;) {
      const r = await fetch(path, {method, body: body && JSON.stringify(body),
        headers: {'content-type': 'application/json', ...(token ? {authorization: 'Bearer ' + token} : {})}});
      const data = await r.json();
      if (r.status === 429) {
        await new Promise(ok => setTimeout(ok, 1000 * Number(r.headers.get('retry-after') || 1)));
        continue;
      }
      if (!r.ok) throw new Error(path + ': ' + r.status + ' ' + JSON.stringify(data));
      return data;
    }
  };
  // Products with stock to spare (a few start nearly sold out).
  const listed = (await json('GET', '/api/v1/products?pageSize=40')).products;
  const stock = await json('GET', '/api/v1/stock?' + listed.map(p => 'productIds=' + p.productId).join('&'));
  const plenty = new Set(stock.items.filter(i => i.available >= 25).map(i => i.productId));
  const products = listed.filter(p => plenty.has(p.productId));
  for (let u = 0; u < users; u++) {
    const email = 'measure-' + crypto.randomUUID().slice(0, 12) + '@example.com';
    const created = await json('POST', '/api/v1/users', {email, password: 'correct horse', fullName: 'Measure'});
    const login = await json('POST', '/api/v1/sessions', {email, password: 'correct horse'});
    const me = '/api/v1/users/' + created.user.userId;
    for (let o = 0; o < orders; o++) {
      const product = products[(u * orders + o) % products.length];
      await json('POST', me + '/cart/items', {productId: product.productId, quantity: 1}, login.accessToken);
      const started = performance.now();
      const placed = await json('POST', me + '/orders', {idempotencyKey: crypto.randomUUID(),
        card: {number: '4242424242424242', expMonth: 12, expYear: 2030, cvc: '123'},
        shippingAddress: {name: 'M', line1: '1 Mesh Street', city: 'Berlin', postalCode: '10115', country: 'DE'}},
        login.accessToken);
      ms.push(performance.now() - started);
      states.push(placed.order.state);
    }
  }
  return {ms, states};
}
