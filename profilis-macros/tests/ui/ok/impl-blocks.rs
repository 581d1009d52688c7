//! Impl blocks: every kind of method, per-method arguments, items that are not methods.
#![deny(warnings)]

use std::fmt;

use profilis::profiled;

macro_rules! no_items {
    () => {};
}

pub struct Grid<T> {
    cells: Vec<T>,
}

#[profiled(sample = 0.25)]
impl<T: Clone + Default> Grid<T>
where
    T: fmt::Debug,
{
    pub const SIZE: usize = 4;

    /// Documented constructor.
    #[must_use]
    pub fn new() -> Self {
        Grid {
            cells: vec![T::default(); Self::SIZE],
        }
    }

    pub const fn empty() -> Self {
        Grid { cells: Vec::new() }
    }

    #[profiled(name = "grid_cell", sample = 1)]
    pub fn cell(&mut self, i: usize) -> Option<&mut T> {
        self.cells.get_mut(i)
    }

    #[profiled(skip)]
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    #[profiled(crate = ::profilis)]
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub async fn first(&self) -> Option<T> {
        self.cells.first().cloned()
    }

    no_items!();
}

#[profiled]
impl<T: fmt::Debug> fmt::Debug for Grid<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.cells).finish()
    }
}

pub trait Shape {
    type Unit;
    const SIDES: u32;
    fn area(&self) -> f64;
}

#[profiled]
impl Shape for Grid<u8> {
    type Unit = u8;
    const SIDES: u32 = 4;

    fn area(&self) -> f64 {
        self.cells.len() as f64
    }
}

pub trait Named {
    fn name(&self) -> &'static str;
}

#[profiled]
impl dyn Named {
    pub fn shout(&self) -> String {
        self.name().to_uppercase()
    }
}

#[profiled]
impl<'a> Named for &'a str {
    fn name(&self) -> &'static str {
        "str"
    }
}

fn main() {
    let mut grid: Grid<u8> = Grid::new();
    if let Some(cell) = grid.cell(0) {
        *cell = 1;
    }
    let _ = (
        grid.len(),
        grid.is_empty(),
        grid.area(),
        Grid::<u8>::empty().len(),
    );
    let _ = grid.first();
    let _ = format!("{grid:?}");
    let _ = (&"x" as &dyn Named).shout();
    let _ = <Grid<u8> as Shape>::SIDES;
}
