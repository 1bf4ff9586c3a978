//! Reading documents, and the deterministic skeleton every document starts from.
//!
//! [`Reader`] reads a document (or a past state of it, at given heads) into [`Fields`] and
//! the typed views of [`crate::model`]. Reading is strict about types: a field of the wrong
//! type is a `Malformed` error, never silently a default, because the server's validator
//! keeps wrong types out and a surprise here means a bug worth seeing.

use std::collections::BTreeMap;

use automerge::{
    ActorId, Automerge, ChangeHash, ObjId, ObjType, ROOT, ReadDoc, ScalarValueRef, ValueRef,
    transaction::{CommitOptions, Transactable},
};

use crate::ids::*;
use crate::model::*;
use crate::money::{Currency, Quantity};
use crate::schema::{FieldType, FieldValue, RecordKind, RecordPath, SCHEMA_VERSION};
use crate::{Error, Result};

/// The field values of one record, by field name. Absent fields are simply not present.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields(pub BTreeMap<String, FieldValue>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.get(name)
    }

    /// A string field; an empty string counts as absent.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(FieldValue::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_owned)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(FieldValue::as_i64)
    }

    pub fn f64(&self, name: &str) -> Option<f64> {
        self.0.get(name).and_then(FieldValue::as_f64)
    }

    pub fn bool(&self, name: &str) -> Option<bool> {
        self.0.get(name).and_then(FieldValue::as_bool)
    }
}

/// The actor that writes a document's skeleton: derived from the document ID alone, so every
/// peer builds byte-identical skeleton changes.
fn skeleton_actor(doc_id: &DocId) -> ActorId {
    match doc_id {
        DocId::Account(id) => ActorId::from(id.as_uuid().as_bytes().as_slice()),
        DocId::User(id) => ActorId::from(id.as_uuid().as_bytes().as_slice()),
        DocId::Catalog => ActorId::from(b"fieldline-catalg".as_slice()),
    }
}

/// A new document holding only its skeleton: `schema_version`, `kind` and the empty
/// containers. The skeleton change is identical on every peer (fixed actor, time 0), so
/// concurrent creation of the same document merges into one set of containers.
///
/// The returned document still uses the skeleton actor; callers set their own actor before
/// writing anything else.
pub fn skeleton(doc_id: &DocId) -> Result<Automerge> {
    let mut doc = Automerge::new().with_actor(skeleton_actor(doc_id));
    let kind = doc_id.kind();
    doc.transact_with(
        |_| {
            CommitOptions::default()
                .with_time(0)
                .with_message("skeleton".to_owned())
        },
        |tx| -> std::result::Result<(), automerge::AutomergeError> {
            tx.put(ROOT, "schema_version", SCHEMA_VERSION)?;
            tx.put(ROOT, "kind", kind.as_str())?;
            match doc_id {
                DocId::Account(_) => {
                    let account = tx.put_object(ROOT, "account", ObjType::Map)?;
                    tx.put_object(&account, "tags", ObjType::Map)?;
                    tx.put_object(&account, "notes", ObjType::Text)?;
                    for section in ["contacts", "visits", "orders"] {
                        tx.put_object(ROOT, section, ObjType::Map)?;
                    }
                }
                DocId::User(user) => {
                    tx.put(ROOT, "user_id", user.to_string())?;
                    for section in ["preferences", "tasks"] {
                        tx.put_object(ROOT, section, ObjType::Map)?;
                    }
                }
                DocId::Catalog => {
                    for section in ["settings", "products", "tax_classes", "price_lists"] {
                        tx.put_object(ROOT, section, ObjType::Map)?;
                    }
                }
            }
            Ok(())
        },
    )
    .map_err(|f| Error::from(f.error))?;
    Ok(doc)
}

/// The hash of a document's skeleton change.
pub fn skeleton_hash(doc_id: &DocId) -> Result<ChangeHash> {
    skeleton(doc_id)?
        .get_heads()
        .first()
        .copied()
        .ok_or_else(|| Error::Automerge("skeleton has no change".into()))
}

/// Reads a document, either as it is now or as it was at `heads`.
pub struct Reader<'a, D: ReadDoc> {
    doc: &'a D,
    heads: Option<&'a [ChangeHash]>,
}

impl<'a, D: ReadDoc> Reader<'a, D> {
    pub fn new(doc: &'a D) -> Self {
        Reader { doc, heads: None }
    }

    /// A reader of the document's state at `heads` (an earlier version).
    pub fn at(doc: &'a D, heads: &'a [ChangeHash]) -> Self {
        Reader {
            doc,
            heads: Some(heads),
        }
    }

    fn get(&self, obj: &ObjId, key: &str) -> Result<Option<(automerge::Value<'a>, ObjId)>> {
        Ok(match self.heads {
            Some(h) => self.doc.get_at(obj, key, h)?,
            None => self.doc.get(obj, key)?,
        })
    }

    fn child(&self, obj: &ObjId, key: &str, want: ObjType) -> Result<Option<ObjId>> {
        match self.get(obj, key)? {
            Some((automerge::Value::Object(t), id)) if t == want => Ok(Some(id)),
            Some(_) => Err(Error::malformed(key, format!("should be a {want:?}"))),
            None => Ok(None),
        }
    }

    /// The map at a path of keys from the root.
    pub fn map_at(&self, props: &[String]) -> Result<Option<ObjId>> {
        let mut obj = ROOT;
        for key in props {
            match self.child(&obj, key, ObjType::Map)? {
                Some(next) => obj = next,
                None => return Ok(None),
            }
        }
        Ok(Some(obj))
    }

    /// The keys of a map.
    pub fn keys(&self, obj: &ObjId) -> Vec<String> {
        match self.heads {
            Some(h) => self.doc.keys_at(obj, h).collect(),
            None => self.doc.keys(obj).collect(),
        }
    }

    fn text(&self, obj: &ObjId) -> Result<String> {
        Ok(match self.heads {
            Some(h) => self.doc.text_at(obj, h)?,
            None => self.doc.text(obj)?,
        })
    }

    pub fn schema_version(&self) -> Result<Option<i64>> {
        match self.get(&ROOT, "schema_version")? {
            Some((automerge::Value::Scalar(s), _)) => Ok(s.as_i64()),
            _ => Ok(None),
        }
    }

    /// Reads the fields of a record map, checking each known field's type.
    pub fn fields(&self, kind: RecordKind, obj: &ObjId) -> Result<Fields> {
        let items: Vec<_> = match self.heads {
            Some(h) => self
                .doc
                .map_range_at(obj, .., h)
                .map(|i| i.into_owned())
                .collect(),
            None => self
                .doc
                .map_range(obj, ..)
                .map(|i| i.into_owned())
                .collect(),
        };
        let mut out = BTreeMap::new();
        for item in items {
            let id = item.id();
            let (key, value) = (item.key.into_owned(), item.value);
            let Some(spec) = kind.field(&key) else {
                // Unknown keys cannot be written past the validator; ignore them when reading.
                continue;
            };
            let bad = || {
                Error::malformed(
                    format!("{}.{}", kind.label(), key),
                    format!("should be {:?}", spec.ty),
                )
            };
            let v = match (spec.ty, &value) {
                (FieldType::Text, ValueRef::Object(ObjType::Text)) => {
                    FieldValue::Text(self.text(&id)?)
                }
                (_, ValueRef::Scalar(ScalarValueRef::Null)) => continue,
                (FieldType::Str, ValueRef::Scalar(ScalarValueRef::Str(s))) => {
                    FieldValue::Str(s.to_string())
                }
                (FieldType::Int, ValueRef::Scalar(ScalarValueRef::Int(i))) => FieldValue::Int(*i),
                (FieldType::Int, ValueRef::Scalar(ScalarValueRef::Uint(u))) => {
                    FieldValue::Int(i64::try_from(*u).map_err(|_| bad())?)
                }
                (FieldType::F64, ValueRef::Scalar(ScalarValueRef::F64(f))) => FieldValue::F64(*f),
                (FieldType::F64, ValueRef::Scalar(ScalarValueRef::Int(i))) => {
                    FieldValue::F64(*i as f64)
                }
                (FieldType::Bool, ValueRef::Scalar(ScalarValueRef::Boolean(b))) => {
                    FieldValue::Bool(*b)
                }
                (
                    FieldType::Timestamp,
                    ValueRef::Scalar(ScalarValueRef::Timestamp(t) | ScalarValueRef::Int(t)),
                ) => FieldValue::Timestamp(*t),
                _ => return Err(bad()),
            };
            out.insert(key, v);
        }
        Ok(Fields(out))
    }

    /// The fields of a record, or `None` if it does not exist (for records with an identity,
    /// one exists once its `id` is written; singletons always exist in a skeleton).
    pub fn record(&self, path: &RecordPath) -> Result<Option<Fields>> {
        let Some(obj) = self.map_at(&path.props())? else {
            return Ok(None);
        };
        let fields = self.fields(path.kind(), &obj)?;
        if path.kind().has_identity() && fields.get("id").is_none() {
            return Ok(None);
        }
        Ok(Some(fields))
    }

    /// Members of a map used as a set (account tags): keys whose value is `true`.
    pub fn set_members(&self, path: &RecordPath) -> Result<Vec<String>> {
        let Some(obj) = self.map_at(&path.props())? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for key in self.keys(&obj) {
            if let Some((automerge::Value::Scalar(s), _)) = self.get(&obj, &key)?
                && s.as_bool() == Some(true)
            {
                out.push(key);
            }
        }
        Ok(out)
    }

    fn section_ids<T>(&self, section: &[&str], parse: fn(&str) -> Result<T>) -> Result<Vec<T>> {
        let props: Vec<String> = section.iter().map(|s| (*s).to_owned()).collect();
        let Some(obj) = self.map_at(&props)? else {
            return Ok(Vec::new());
        };
        let mut ids = Vec::new();
        for k in self.keys(&obj) {
            ids.push(parse(&k).map_err(|_| {
                Error::malformed(section.join("."), format!("key {k} is not an ID"))
            })?);
        }
        Ok(ids)
    }

    // ---- account documents ----------------------------------------------------------------

    pub fn account(&self) -> Result<Option<Account>> {
        let Some(fields) = self.record(&RecordPath::Account)? else {
            return Ok(None);
        };
        let tags = self.set_members(&RecordPath::AccountTags)?;
        Account::from_fields(&fields, tags).map(Some)
    }

    /// Owner, team and visibility of the account, if it exists.
    pub fn account_acl(&self) -> Result<Option<AccountAcl>> {
        let Some(f) = self.record(&RecordPath::Account)? else {
            return Ok(None);
        };
        let parse = |name: &str| {
            f.str(name)
                .ok_or_else(|| Error::malformed(format!("account.{name}"), "is missing"))
        };
        Ok(Some(AccountAcl {
            owner: UserId::parse(parse("owner")?)?,
            team: TeamId::parse(parse("team")?)?,
            visibility: Visibility::parse(parse("visibility")?)?,
        }))
    }

    pub fn contact_ids(&self) -> Result<Vec<ContactId>> {
        self.section_ids(&["contacts"], ContactId::parse)
    }

    pub fn contact(&self, account: AccountId, id: ContactId) -> Result<Option<Contact>> {
        self.record(&RecordPath::Contact(id))?
            .map(|f| Contact::from_fields(account, &f))
            .transpose()
    }

    pub fn visit_ids(&self) -> Result<Vec<VisitId>> {
        self.section_ids(&["visits"], VisitId::parse)
    }

    pub fn visit(&self, account: AccountId, id: VisitId) -> Result<Option<Visit>> {
        self.record(&RecordPath::Visit(id))?
            .map(|f| Visit::from_fields(account, &f))
            .transpose()
    }

    pub fn order_ids(&self) -> Result<Vec<OrderId>> {
        self.section_ids(&["orders"], OrderId::parse)
    }

    pub fn order(&self, account: AccountId, id: OrderId) -> Result<Option<Order>> {
        let Some(fields) = self.record(&RecordPath::Order(id))? else {
            return Ok(None);
        };
        let order_key = id.to_string();
        let mut lines = Vec::new();
        for line_id in self.section_ids(&["orders", &order_key, "lines"], OrderLineId::parse)? {
            if let Some(f) = self.record(&RecordPath::OrderLine(id, line_id))? {
                lines.push(OrderLine::from_fields(&f)?);
            }
        }
        lines.sort_by_key(|l| l.id);
        Order::from_fields(account, &fields, lines).map(Some)
    }

    pub fn contacts(&self, account: AccountId) -> Result<Vec<Contact>> {
        let mut out = Vec::new();
        for id in self.contact_ids()? {
            out.extend(self.contact(account, id)?);
        }
        Ok(out)
    }

    pub fn visits(&self, account: AccountId) -> Result<Vec<Visit>> {
        let mut out = Vec::new();
        for id in self.visit_ids()? {
            out.extend(self.visit(account, id)?);
        }
        Ok(out)
    }

    pub fn orders(&self, account: AccountId) -> Result<Vec<Order>> {
        let mut out = Vec::new();
        for id in self.order_ids()? {
            out.extend(self.order(account, id)?);
        }
        Ok(out)
    }

    // ---- user documents -------------------------------------------------------------------

    pub fn task_ids(&self) -> Result<Vec<TaskId>> {
        self.section_ids(&["tasks"], TaskId::parse)
    }

    pub fn task(&self, id: TaskId) -> Result<Option<Task>> {
        self.record(&RecordPath::Task(id))?
            .map(|f| Task::from_fields(&f))
            .transpose()
    }

    pub fn tasks(&self) -> Result<Vec<Task>> {
        let mut out = Vec::new();
        for id in self.task_ids()? {
            out.extend(self.task(id)?);
        }
        Ok(out)
    }

    pub fn preferences(&self) -> Result<Preferences> {
        match self.record(&RecordPath::Preferences)? {
            Some(f) => Preferences::from_fields(&f),
            None => Ok(Preferences::default()),
        }
    }

    // ---- the catalog ----------------------------------------------------------------------

    pub fn catalog(&self) -> Result<Catalog> {
        let base_currency = self
            .record(&RecordPath::CatalogSettings)?
            .and_then(|f| f.str("base_currency").map(Currency::parse))
            .transpose()?;
        let mut products = BTreeMap::new();
        for id in self.section_ids(&["products"], ProductId::parse)? {
            if let Some(f) = self.record(&RecordPath::Product(id))? {
                products.insert(id, Product::from_fields(&f)?);
            }
        }
        let mut tax_classes = BTreeMap::new();
        if let Some(obj) = self.map_at(&["tax_classes".to_owned()])? {
            for code in self.keys(&obj) {
                if let Some(f) = self.record(&RecordPath::TaxClass(code.clone()))? {
                    tax_classes.insert(code.clone(), TaxClass::from_fields(&code, &f)?);
                }
            }
        }
        let mut price_lists = BTreeMap::new();
        for id in self.section_ids(&["price_lists"], PriceListId::parse)? {
            let Some(f) = self.record(&RecordPath::PriceList(id))? else {
                continue;
            };
            let key = id.to_string();
            let mut items = Vec::new();
            for item in self.section_ids(&["price_lists", &key, "items"], PriceListItemId::parse)? {
                if let Some(f) = self.record(&RecordPath::PriceListItem(id, item))? {
                    items.push(PriceListItem::from_fields(&f)?);
                }
            }
            items.sort_by_key(|i| i.id);
            price_lists.insert(id, PriceList::from_fields(&f, items)?);
        }
        Ok(Catalog {
            base_currency,
            products,
            tax_classes,
            price_lists,
        })
    }
}

/// A typed snapshot of the catalog document, used for pricing order lines.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Catalog {
    pub base_currency: Option<Currency>,
    pub products: BTreeMap<ProductId, Product>,
    pub tax_classes: BTreeMap<String, TaxClass>,
    pub price_lists: BTreeMap<PriceListId, PriceList>,
}

/// The price the catalog gives for a product at order time.
#[derive(Clone, Debug, PartialEq)]
pub struct Quote {
    pub product: Product,
    pub unit_price_minor: i64,
    pub tax_bp: i64,
    /// The price list the price came from, if any (else the product's base price).
    pub price_list_id: Option<PriceListId>,
}

impl Catalog {
    pub fn product(&self, id: ProductId) -> Option<&Product> {
        self.products.get(&id)
    }

    /// Prices `quantity` of a product in `currency` at time `at`.
    ///
    /// The account's price list wins when it has an item for the product in that currency
    /// that is valid at `at` and whose minimum quantity is met (the highest such minimum, so
    /// volume breaks apply); otherwise the base price, if the currency is the catalog's base
    /// currency. Anything else is a clear error: the rep is never shown an invented price.
    pub fn quote(
        &self,
        product_id: ProductId,
        currency: Currency,
        price_list: Option<PriceListId>,
        quantity: Quantity,
        at: i64,
    ) -> Result<Quote> {
        let product = self
            .products
            .get(&product_id)
            .ok_or_else(|| Error::NotFound {
                kind: "product",
                id: product_id.to_string(),
            })?;
        if !product.active {
            return Err(Error::invalid(
                "product",
                "is no longer sold (inactive in the catalog)",
            ));
        }
        let tax_bp = self
            .tax_classes
            .get(&product.tax_class)
            .map(|t| t.rate_bp)
            .ok_or_else(|| Error::NotFound {
                kind: "tax class",
                id: product.tax_class.clone(),
            })?;
        let from_list = price_list
            .and_then(|id| self.price_lists.get(&id))
            .filter(|pl| pl.active && pl.currency == currency)
            .and_then(|pl| {
                pl.items
                    .iter()
                    .filter(|i| !i.deleted && i.product_id == product_id)
                    .filter(|i| {
                        i.valid_from.is_none_or(|f| f <= at) && i.valid_to.is_none_or(|t| at <= t)
                    })
                    .filter(|i| i.min_qty.is_none_or(|m| m <= quantity))
                    .max_by_key(|i| i.min_qty.unwrap_or_default())
                    .map(|i| (pl.id, i.price_minor))
            });
        if let Some((list, price)) = from_list {
            return Ok(Quote {
                product: product.clone(),
                unit_price_minor: price,
                tax_bp,
                price_list_id: Some(list),
            });
        }
        if self.base_currency == Some(currency) {
            return Ok(Quote {
                product: product.clone(),
                unit_price_minor: product.base_price_minor,
                tax_bp,
                price_list_id: None,
            });
        }
        Err(Error::invalid(
            "price",
            format!(
                "the catalog has no {currency} price for this product; ask the back office for a price list"
            ),
        ))
    }
}
